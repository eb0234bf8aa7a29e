import t from 'tap'
import { emptyUsage, type ScopeUsage } from '../../src/policy/budget.ts'
import { breakerBlock, breakerOpen, recordProvenFix, slowStartAllowance, slowStartBlock, stormSettleBlock, updateBreakerMemory, type BreakerMemory } from '../../src/policy/circuit-breaker.ts'
import { iso } from '../../src/time.ts'
import { minutes, policy, T0 } from '../support/core.ts'

const config = policy({ breakerThreshold: 0.2, breakerMinNodes: 2, stormSettleMs: 30_000, maxConcurrentDrains: 4 })
const usage = (over: Partial<ScopeUsage>): ScopeUsage => ({ ...emptyUsage('pool=app', 'app', undefined), ...over })

t.test('the breaker opens at the threshold of the pool\'s capacity, never for one node', async t => {
  t.notOk(breakerOpen(usage({ size: 10 }), 1, config), 'one sick node never trips it')
  t.ok(breakerOpen(usage({ size: 10 }), 2, config), '2 of 10 = 20%')
  t.notOk(breakerOpen(usage({ size: 20 }), 2, config), '2 of 20 = 10%')
})

t.test('nodes out of service for other reasons are not capacity', async t => {
  t.notOk(breakerOpen(usage({ size: 20, outOfService: 0 }), 3, config))
  t.ok(breakerOpen(usage({ size: 20, outOfService: 6, ours: 0 }), 3, config), '3 of 14 serving = 21%')
  t.notOk(breakerOpen(usage({ size: 20, outOfService: 6, ours: 6 }), 3, config), 'our own held nodes stay in the denominator')
})

t.test('its block names the scope with stable words, the numbers in fields', async t => {
  const block = breakerBlock(usage({ size: 10 }), 3, config)
  t.equal(block?.rule, 'circuit-breaker')
  t.equal(block?.scope, 'pool=app')
  t.match(block?.reason, /circuit breaker open for pool=app: at least 20% of its nodes alerted within BREAKER_SETTLE/)
  t.match(block?.detail, { alerting: 3, capacity: 10 })
})

t.test('no start until the fleet has seen no new alerting node for STORM_SETTLE', async t => {
  const block = stormSettleBlock(T0 - 10_000, T0, config)
  t.equal(block?.rule, 'storm-settle')
  t.equal(block?.until, T0 + 20_000)
  t.equal(stormSettleBlock(T0 - 30_000, T0, config), undefined)
  t.equal(stormSettleBlock(undefined, T0, config), undefined)
})

t.test('slow start after a storm: one at a time, doubling with each proven fix, then forgotten', async t => {
  let memory: ReadonlyMap<string, BreakerMemory> = new Map()
  memory = updateBreakerMemory(memory, new Set(['pool=app']), T0, config)
  t.same(memory.get('pool=app'), { openSince: iso(T0), proven: 0 })
  t.equal(updateBreakerMemory(memory, new Set(['pool=app']), T0 + 1000, config), memory, 'unchanged while open: nothing to write')
  memory = updateBreakerMemory(memory, new Set(), T0 + minutes(10), config)
  t.equal(memory.get('pool=app')?.closedAt, iso(T0 + minutes(10)))
  t.equal(slowStartAllowance(memory.get('pool=app')), 1)
  t.match(slowStartBlock(usage({ size: 10, slots: 1 }), memory.get('pool=app'))?.reason, /one remediation at a time, doubling after each proven fix/)
  t.equal(slowStartBlock(usage({ size: 10, slots: 0 }), memory.get('pool=app')), undefined)
  memory = recordProvenFix(memory, ['pool=app', 'pool=data'], T0 + minutes(20))
  t.equal(slowStartAllowance(memory.get('pool=app')), 2)
  t.equal(recordProvenFix(memory, ['pool=app'], T0 + minutes(5)), memory, 'a fix proven before the storm ended does not count')
  memory = recordProvenFix(memory, ['pool=app'], T0 + minutes(30))
  t.equal(slowStartAllowance(memory.get('pool=app')), 4)
  memory = updateBreakerMemory(memory, new Set(), T0 + minutes(31), config)
  t.notOk(memory.has('pool=app'), 'the allowance reached MAX_CONCURRENT_DRAINS: recovered')
  t.equal(slowStartAllowance(undefined), Infinity)
})

t.test('a scope that storms again while recovering starts over', async t => {
  const recovering = new Map([['pool=app', { openSince: iso(T0), closedAt: iso(T0 + minutes(10)), proven: 1 }]])
  const again = updateBreakerMemory(recovering, new Set(['pool=app']), T0 + minutes(20), config)
  t.same(again.get('pool=app'), { openSince: iso(T0 + minutes(20)), proven: 0 })
})
