import t from 'tap'
import { breakerBlock, measureScopes, recoverBreakers, updateBreakers } from '../../src/policy/circuit-breaker.ts'
import { iso } from '../../src/time.ts'
import { firingAlert, fleet, minutes, policy, T0 } from '../support/core.ts'

const config = policy({ breakerThreshold: 0.2, breakerMinNodes: 2, breakerSettleMs: minutes(10) })
const alerting = (...names: string[]) => Object.fromEntries(names.map(n => [n, { phase: 'pending' as const, alert: firingAlert() }]))

t.test('shares are measured per pool and per zone within it', async t => {
  const scopes = measureScopes(fleet({ app: 10, data: 10 }, alerting('app-1', 'app-3')))
  t.same(scopes.get('pool=app'), { key: 'pool=app', alerting: 2, size: 10 })
  t.same(scopes.get('pool=app,zone=zone-a'), { key: 'pool=app,zone=zone-a', alerting: 2, size: 5 })
  t.same(scopes.get('pool=data'), { key: 'pool=data', alerting: 0, size: 10 })
})

t.test('the breaker opens at the threshold, per pool, and blocks only that pool', async t => {
  const snapshot = fleet({ app: 10, data: 10 }, alerting('app-1', 'app-2'))
  const memory = updateBreakers(new Map(), snapshot, T0, config)
  t.ok(memory.has('pool=app'), '2 of 10 = 20%')
  t.notOk(memory.has('pool=data'))
  t.match(breakerBlock(snapshot.get('app-5')!, memory, config)?.reason, /circuit breaker open for pool=app since/)
  t.equal(breakerBlock(snapshot.get('data-5')!, memory, config), undefined)
})

t.test('a zone can trip on its own while the pool as a whole is below the threshold', async t => {
  // 20 nodes, zone-a has 10; 2 alerting there is 10% of the pool but 20% of the zone.
  const snapshot = fleet({ app: 20 }, alerting('app-1', 'app-3'))
  const strict = policy({ breakerThreshold: 0.2, breakerMinNodes: 2 })
  const memory = updateBreakers(new Map(), snapshot, T0, strict)
  t.notOk(memory.has('pool=app'))
  t.ok(memory.has('pool=app,zone=zone-a'))
  t.ok(breakerBlock(snapshot.get('app-5')!, memory, strict), 'zone-a node blocked')
  t.equal(breakerBlock(snapshot.get('app-2')!, memory, strict), undefined, 'zone-b node not blocked')
})

t.test('one sick node never trips it, whatever the share', async t => {
  const memory = updateBreakers(new Map(), fleet({ tiny: 2 }, alerting('tiny-1')), T0, config)
  t.equal(memory.size, 0)
})

t.test('it closes only after the share stays below the threshold for the settle time', async t => {
  const stormy = fleet({ app: 10 }, alerting('app-1', 'app-2', 'app-3'))
  const calm = fleet({ app: 10 }, alerting('app-1'))
  let memory = updateBreakers(new Map(), stormy, T0, config)
  memory = updateBreakers(memory, calm, T0 + minutes(1), config)
  t.equal(memory.get('pool=app')?.belowSince, iso(T0 + minutes(1)), 'settling')
  t.match(breakerBlock(calm.get('app-5')!, memory, config)?.reason, /settling/)
  memory = updateBreakers(memory, stormy, T0 + minutes(5), config)
  t.equal(memory.get('pool=app')?.belowSince, undefined, 'back above: the settle clock restarts')
  memory = updateBreakers(memory, calm, T0 + minutes(6), config)
  memory = updateBreakers(memory, calm, T0 + minutes(15), config)
  t.ok(memory.has('pool=app'), '9 minutes below is not enough')
  memory = updateBreakers(memory, calm, T0 + minutes(16), config)
  t.notOk(memory.has('pool=app'), 'closed after 10 minutes below')
})

t.test('after a restart, nodes deferred by the breaker reopen it, settling', async t => {
  const deferred = { phase: 'pending' as const, alert: firingAlert(), deferred: { rule: 'circuit-breaker' as const, reason: 'x', scope: 'pool=app' } }
  const memory = recoverBreakers(fleet({ app: 5 }, { 'app-1': deferred }), T0)
  t.same([...memory.keys()], ['pool=app'])
  t.equal(memory.get('pool=app')?.belowSince, iso(T0))
})
