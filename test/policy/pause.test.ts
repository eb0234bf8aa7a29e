import t from 'tap'
import { expiredPauses, pauseActive, pauseBlock, windowBlock } from '../../src/policy/pause.ts'
import { parseWindows } from '../../src/policy/window.ts'
import type { Pause } from '../../src/remediation/fleet-state.ts'

const at = Date.parse('2026-12-01T12:00:00Z')
const pause = (extra: Partial<Pause> = {}): Pause => ({ reason: 'incident 4711', by: 'alice', at: '2026-12-01T11:00:00.000Z', ...extra })

t.test('a pause is active until its expiry, for ever without one', async t => {
  t.ok(pauseActive(pause(), at))
  t.ok(pauseActive(pause({ until: '2026-12-01T12:00:01Z' }), at))
  t.notOk(pauseActive(pause({ until: '2026-12-01T12:00:00Z' }), at), 'ends at its expiry')
  t.notOk(pauseActive(undefined, at))
})

t.test('the cluster-wide pause holds every pool; a pool pause only its pool; the block names who, when and why', async t => {
  const pauses = new Map([['pool/data', pause({ until: '2026-12-01T13:00:00.000Z' })]])
  t.equal(pauseBlock(pauses, 'app', at), undefined)
  t.same(pauseBlock(pauses, 'data', at), {
    rule: 'paused',
    scope: 'pool=data',
    reason: 'paused for pool data by alice at 2026-12-01T11:00:00.000Z until 2026-12-01T13:00:00.000Z: incident 4711',
    until: Date.parse('2026-12-01T13:00:00Z')
  })
  const both = new Map([...pauses, ['cluster', pause({ by: 'bob', reason: 'change freeze' })]])
  t.match(pauseBlock(both, 'app', at), { rule: 'paused', scope: 'cluster', reason: 'paused cluster-wide by bob at 2026-12-01T11:00:00.000Z: change freeze' })
  t.equal(pauseBlock(both, 'data', at)!.scope, 'cluster', 'the wider pause is named first')
  t.match(pauseBlock(new Map([['cluster', pause({ by: 'unknown', at: '' })]]), 'app', at), { reason: 'paused cluster-wide by unknown: incident 4711' }, 'written by hand without a time: no empty "at"')
})

t.test('expired pauses are the ones to end', async t => {
  const pauses = new Map([['cluster', pause({ until: '2026-12-01T11:59:59Z' })], ['pool/app', pause()], ['pool/data', pause({ until: '2026-12-02T00:00:00Z' })]])
  t.same(expiredPauses(pauses, at), ['cluster'])
  t.equal(pauseBlock(pauses, 'gpu', at), undefined, 'an expired cluster pause holds nothing')
})

t.test('outside every window: blocked with the next opening; inside or without windows: not', async t => {
  t.equal(windowBlock([], at), undefined, 'no windows: always')
  const windows = parseWindows('Mon-Fri 08:00-10:00 UTC; Sat 10:00-12:00 Europe/Berlin')
  // 2026-12-01 is a Tuesday: 12:00 UTC is after its window; Wednesday 08:00 UTC opens next.
  t.same(windowBlock(windows, at), {
    rule: 'window',
    reason: 'outside the maintenance windows (REMEDIATION_WINDOWS Mon-Fri 08:00-10:00 UTC; Sat 10:00-12:00 Europe/Berlin); next opening 2026-12-02T08:00:00.000Z',
    until: Date.parse('2026-12-02T08:00:00Z'),
    detail: { nextOpening: '2026-12-02T08:00:00.000Z' }
  })
  t.equal(windowBlock(windows, Date.parse('2026-12-01T09:59:00Z')), undefined, 'inside Tuesday\'s window')
})
