import t from 'tap'
import { decodeFleetState, decodePauses, fleetStatePatch, pauseKey } from '../../src/remediation/fleet-state.ts'

const prefix = 'self-healing-controller.io'

t.test('pauses round-trip through the Lease annotation', async t => {
  const before = decodeFleetState({}, '1', prefix)
  const pauses = new Map([[pauseKey(), { reason: 'freeze', by: 'alice', at: '2026-12-01T10:00:00.000Z' }], [pauseKey('data'), { reason: 'db migration', by: 'bob', at: '2026-12-01T10:00:00.000Z', until: '2026-12-01T12:00:00.000Z' }]])
  const patch = fleetStatePatch(before, { ...before, pauses }, prefix)
  t.same(Object.keys(patch), [`${prefix}/pauses`], 'only the section that changed is written')
  t.same(decodeFleetState(patch as Record<string, string>, '2', prefix).pauses, pauses)
  t.same(fleetStatePatch({ ...before, pauses }, before, prefix), { [`${prefix}/pauses`]: null }, 'no pause left: the annotation goes')
})

t.test('what an operator writes with kubectl annotate is read, and doubt pauses the cluster', async t => {
  t.same(decodePauses('{"cluster":{"reason":"incident 4711"}}'), new Map([['cluster', { reason: 'incident 4711', by: 'unknown', at: '' }]]), 'missing fields are filled in')
  t.same(decodePauses('{"pool/app":{"reason":"x","by":"carol","at":"2026-12-01T10:00:00Z","until":"soon"}}'), new Map([['pool/app', { reason: 'x', by: 'carol', at: '2026-12-01T10:00:00Z' }]]), 'an expiry that is no time is no expiry')
  for (const text of ['{"cluster":', '["cluster"]', '"paused"']) {
    const pauses = decodePauses(text)
    t.same([...pauses.keys()], ['cluster'], `${text}: unreadable pauses everything`)
    t.match(pauses.get('cluster')!.reason, /the pause annotation is unreadable/)
  }
  t.match(decodePauses('{"app":{"reason":"deploy"}}').get('cluster'), { reason: /deploy \(under the key "app", which names no scope: use "cluster" or "pool\/NAME"\)/ })
  t.same(decodePauses(''), new Map())
  t.same(decodePauses(undefined), new Map())
})
