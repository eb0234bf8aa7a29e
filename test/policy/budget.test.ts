import t from 'tap'
import { allowedUnavailable, budgetBlock, disruptedElsewhereBlock, emptyUsage, outOfServiceCause, parseBudget, parseDisruptorTaint, semaphoreBlock, type ScopeUsage } from '../../src/policy/budget.ts'
import { knownDisruptorTaints } from '../../src/policy/budget.ts'
import { policy, record, view } from '../support/core.ts'

const config = policy()

t.test('out of service: unschedulable, not Ready, being deleted, or tainted by a known disruptor', async t => {
  t.equal(outOfServiceCause(view('n'), config), undefined, 'a Ready, schedulable node serves')
  t.equal(outOfServiceCause(view('n', { unschedulable: true }), config), 'cordoned')
  t.equal(outOfServiceCause(view('n', { ready: false }), config), 'not Ready')
  t.equal(outOfServiceCause(view('n', { deleting: true, ready: false }), config), 'being deleted', 'deletion names it first')
  const taints: Array<[string, RegExp]> = [
    ['karpenter.sh/disrupted', /Karpenter/],
    ['ToBeDeletedByClusterAutoscaler', /cluster-autoscaler/],
    ['node.kubernetes.io/out-of-service', /non-graceful/],
    ['node.cloudprovider.kubernetes.io/shutdown', /cloud node lifecycle/],
    ['aws-node-termination-handler/spot-itn', /Termination Handler/],
    ['aws-node-termination-handler/rebalance-recommendation', /Termination Handler/]
  ]
  for (const [key, by] of taints) t.match(outOfServiceCause(view('n', { taints: [{ key, effect: 'NoSchedule' }] }), config), by, key)
  t.equal(outOfServiceCause(view('n', { taints: [{ key: 'dedicated', effect: 'NoSchedule' }] }), config), undefined, 'an ordinary taint is not a disruption')
})

t.test('DISRUPTION_TAINTS extends the list: KEY exact, PREFIX* a family', async t => {
  const extended = policy({ disruptorTaints: [...knownDisruptorTaints, parseDisruptorTaint('example.com/maintenance'), parseDisruptorTaint('vendor.io/*')] })
  t.match(outOfServiceCause(view('n', { taints: [{ key: 'example.com/maintenance', effect: 'NoExecute' }] }), extended), /DISRUPTION_TAINTS/)
  t.match(outOfServiceCause(view('n', { taints: [{ key: 'vendor.io/draining', effect: 'NoSchedule' }] }), extended), /DISRUPTION_TAINTS/)
  t.equal(outOfServiceCause(view('n', { taints: [{ key: 'example.com/maintenance-window', effect: 'NoSchedule' }] }), extended), undefined, 'exact means exact')
})

t.test('POOL_MAX_UNAVAILABLE: a count, or a percentage rounded down and never below 1', async t => {
  t.same(parseBudget('20%'), { percent: 20 })
  t.same(parseBudget('3'), { count: 3 })
  for (const bad of ['0', '0%', '101%', '-1', '1.5', 'a lot', '']) t.equal(parseBudget(bad), undefined, bad)
  t.equal(allowedUnavailable({ percent: 20 }, 10), 2)
  t.equal(allowedUnavailable({ percent: 20 }, 9), 1, 'rounded down')
  t.equal(allowedUnavailable({ percent: 20 }, 3), 1, 'never below 1')
  t.equal(allowedUnavailable({ count: 2 }, 50), 2)
})

const usage = (over: Partial<ScopeUsage>, key = 'pool=app', zone?: string): ScopeUsage => ({ ...emptyUsage(key, 'app', zone), ...over })

t.test('the budget blocks a start that would take one node too many out of service, in the pool or in its zone', async t => {
  const spec = policy({ poolMaxUnavailable: { percent: 20 } })
  const pool = usage({ size: 10, outOfService: 1, ours: 1 })
  const zone = usage({ size: 5, outOfService: 0 }, 'pool=app,zone=a', 'a')
  t.equal(budgetBlock(pool, zone, spec), undefined, '1 of 2 used in the pool, 0 of 1 in the zone')
  const full = budgetBlock(usage({ size: 10, outOfService: 2, ours: 0 }), zone, spec)
  t.equal(full?.rule, 'budget')
  t.equal(full?.scope, 'pool=app')
  t.same(full?.detail, { size: 10, outOfService: 2, ours: 0, others: 2, budget: 2 }, 'numbers in fields, not in the reason')
  t.notMatch(full?.reason, /\d+ of \d+/)
  const zoneFull = budgetBlock(pool, usage({ size: 5, outOfService: 1 }, 'pool=app,zone=a', 'a'), spec)
  t.equal(zoneFull?.scope, 'pool=app,zone=a')
  t.match(zoneFull?.reason, /zone a of pool app has no disruption budget left/)
})

t.test('our slots: MAX_CONCURRENT_DRAINS held at once', async t => {
  t.equal(semaphoreBlock(0, { maxConcurrentDrains: 1 }), undefined)
  t.same(semaphoreBlock(1, { maxConcurrentDrains: 1 })?.detail, { held: 1, max: 1 })
})

t.test('a node someone else has out of service is never started', async t => {
  t.equal(disruptedElsewhereBlock(view('n'), config), undefined)
  t.match(disruptedElsewhereBlock(view('n', { unschedulable: true, record: record({ phase: 'pending' }) }), config)?.reason, /already out of service: cordoned/)
})
