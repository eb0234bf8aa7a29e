import t from 'tap'
import { createFleet } from '../../src/remediation/fleet.ts'
import { dueAt, nextToStart, planNode, progressDeparted, vetoBlock } from '../../src/remediation/schedule.ts'
import { iso } from '../../src/time.ts'
import { firingAlert, fleet, fleetOf, minutes, policy, record, T0, view } from '../support/core.ts'

const pending = (ago: number, extra = {}) => ({ phase: 'pending' as const, since: iso(T0 - minutes(ago)), alerts: [firingAlert()], ...extra })
const loose = policy({ maxConcurrentDrains: 10, poolMaxUnavailable: { count: 10 }, poolSpacingMs: 0, stormSettleMs: 0, breakerMinNodes: 100 })

t.test('first come, first served, up to the free slots; each start takes a slot', async t => {
  const config = policy({ ...loose, maxConcurrentDrains: 2 })
  const index = fleetOf(fleet({ app: 5 }, { 'app-1': pending(1), 'app-2': pending(3), 'app-3': pending(2), 'app-4': { phase: 'draining' } }).values(), config)
  const schedule = nextToStart(index, T0, config)
  t.same(schedule.start.map(s => s.node), ['app-2'], 'one slot left: the oldest pending')
  t.match(schedule.blocked.get('app-3'), { rule: 'semaphore' })
  t.match(schedule.blocked.get('app-1'), { rule: 'semaphore' })
})

t.test('one call never over-commits the pool\'s spacing or its budget', async t => {
  const spaced = policy({ ...loose, poolSpacingMs: minutes(5) })
  const index = fleetOf(fleet({ app: 5, data: 5 }, { 'app-1': pending(2), 'app-2': pending(1), 'data-1': pending(1) }).values(), spaced)
  t.same(nextToStart(index, T0, spaced).start.map(s => s.node), ['app-1', 'data-1'], 'spacing per pool')
  const budget = policy({ ...loose, poolMaxUnavailable: { percent: 20 } })
  const wide = fleetOf(fleet({ app: 10 }, { 'app-1': pending(3), 'app-3': pending(2), 'app-2': pending(1) }).values(), budget)
  const schedule = nextToStart(wide, T0, budget)
  t.same(schedule.start.map(s => s.node), ['app-1', 'app-2'], 'pool budget 2, one per zone')
  t.match(schedule.blocked.get('app-3'), { rule: 'budget', scope: 'pool=app,zone=zone-a' })
})

t.test('an open breaker holds the pending nodes of its scope', async t => {
  const config = policy({ ...loose, breakerMinNodes: 2, breakerThreshold: 0.4 })
  const index = fleetOf(fleet({ app: 5, data: 5 }, { 'app-1': pending(1), 'app-2': pending(1), 'data-1': pending(1) }).values(), config)
  const schedule = nextToStart(index, T0, config)
  t.match(schedule.blocked.get('app-1'), { rule: 'circuit-breaker', scope: 'pool=app' })
  t.same(schedule.start.map(s => s.node), ['data-1'])
})

t.test('the storm settle time is fleet-wide and tells the engine when to look again', async t => {
  const config = policy({ ...loose, stormSettleMs: 30_000 })
  const index = fleetOf(fleet({ app: 5, data: 5 }, { 'app-1': pending(5, { alerts: [firingAlert({ receivedAt: iso(T0 - 10_000), lastSeen: iso(T0 - 10_000) })] }), 'data-1': pending(5) }).values(), config)
  const schedule = nextToStart(index, T0, config)
  t.same(schedule.start, [])
  t.match(schedule.blocked.get('data-1'), { rule: 'storm-settle' })
  t.equal(schedule.wakeAt, T0 + 20_000)
})

t.test('vetoes: the operator\'s annotation (optionally until a time) and Karpenter\'s do-not-disrupt', async t => {
  t.match(vetoBlock(view('n', { veto: { reason: 'disk being replaced by hand' } }), T0), { rule: 'veto', reason: /vetoed: disk being replaced by hand/ })
  t.match(vetoBlock(view('n', { veto: { reason: 'firmware', until: iso(T0 + minutes(5)) } }), T0), { until: T0 + minutes(5) })
  t.equal(vetoBlock(view('n', { veto: { reason: 'firmware', until: iso(T0 - 1) } }), T0), undefined, 'an expired veto is no veto')
  const index = fleetOf(fleet({ app: 5 }, { 'app-1': pending(1) }).values(), loose)
  index.upsert({ ...index.get('app-1')!, veto: { reason: 'karpenter.sh/do-not-disrupt: "true"' } })
  t.match(nextToStart(index, T0, loose).blocked.get('app-1'), { rule: 'veto' })
})

t.test('a truncated notification makes its pools doubtful until the picture is complete', async t => {
  const index = fleetOf(fleet({ app: 5, data: 5 }, { 'app-1': pending(1), 'data-1': pending(1) }).values(), loose)
  index.setState({ ...index.state, doubts: new Map([['g', { groupKey: 'g', pools: ['app'], since: iso(T0), hidden: 9 }]]) })
  const schedule = nextToStart(index, T0, loose)
  t.match(schedule.blocked.get('app-1'), { rule: 'truncated', detail: { hidden: 9 } })
  t.same(schedule.start.map(s => s.node), ['data-1'])
})

t.test('gates from the shell (pause, window) hold starts', async t => {
  const index = fleetOf(fleet({ app: 5 }, { 'app-1': pending(1) }).values(), loose)
  const schedule = nextToStart(index, T0, loose, { paused: pool => pool === 'app' ? { rule: 'paused', reason: 'paused by ops' } : undefined })
  t.match(schedule.blocked.get('app-1'), { rule: 'paused' })
})

t.test('the rung is chosen at the start: the ladder for drain, the label otherwise', async t => {
  const index = fleetOf(fleet({ app: 5 }, {
    'app-1': pending(1, { remediations: [{ at: iso(T0 - minutes(30)), action: 'reboot' }] }),
    'app-3': pending(1, { alerts: [firingAlert({ action: 'reboot' })] })
  }).values(), loose)
  t.same(nextToStart(index, T0, loose).start, [{ node: 'app-1', action: 'replace' }, { node: 'app-3', action: 'reboot' }])
})

t.test('planNode: the level-triggered step for each phase', async t => {
  const config = policy({ verifyDwellMs: minutes(5), alertTtlMs: minutes(130), rebootTimeoutMs: minutes(15) })
  const plan = (over: Parameters<typeof view>[1], r: Parameters<typeof record>[0], at = T0) => planNode(view('n', { ...over, record: record(r) }), at, config)?.kind
  t.equal(plan({}, pending(1)), undefined, 'pending with a live alert: the schedule decides')
  t.equal(plan({}, { phase: 'pending', alerts: [firingAlert({ status: 'resolved', endedAt: iso(T0) })] }), 'cancel')
  t.equal(plan({}, { phase: 'pending', alerts: [firingAlert({ lastSeen: iso(T0 - minutes(131)) })] }), 'cancel', 'stale alerts count for nothing')
  t.equal(plan({ unschedulable: true }, { phase: 'draining' }), 'resume')
  t.equal(plan({ unschedulable: false }, { phase: 'draining' }), 'operator-uncordoned')
  t.equal(plan({ unschedulable: true, bootID: 'b2' }, { phase: 'rebooting', bootID: 'b1', rebootDeadline: iso(T0 + minutes(5)) }), 'back-in-service')
  t.equal(plan({ unschedulable: true, bootID: 'b1' }, { phase: 'rebooting', bootID: 'b1', rebootDeadline: iso(T0 + minutes(5)) }), undefined)
  t.equal(plan({ unschedulable: true, bootID: 'b1' }, { phase: 'rebooting', bootID: 'b1', rebootDeadline: iso(T0) }), 'timeout')
  t.equal(plan({ unschedulable: true }, { phase: 'replacing', replaceDeadline: iso(T0) }), 'timeout')
  t.equal(plan({}, { phase: 'verifying', verifySince: iso(T0 - minutes(5)) }), 'proven')
  t.equal(plan({}, { phase: 'verifying', verifySince: iso(T0 - minutes(4)) }), undefined)
  t.equal(plan({ ready: false }, { phase: 'verifying', verifySince: iso(T0 - minutes(4)) }), 'interrupt-dwell', 'not Ready: the dwell waits')
  t.equal(plan({ ready: false }, { phase: 'verifying', verifySince: iso(T0 - minutes(40)), dwellInterruptedAt: iso(T0 - minutes(30)) }), 'not-fixed', 'not Ready for REBOOT_TIMEOUT after the fix')
  t.equal(plan({}, { phase: 'verifying', verifySince: iso(T0 - minutes(40)), dwellInterruptedAt: iso(T0 - minutes(1)) }), 'resume-dwell', 'Ready again: the dwell starts over')
  t.equal(plan({ unschedulable: true }, { phase: 'verifying', verifySince: iso(T0 - minutes(4)) }), 'taken-over', 'someone cordoned it after we let it go')
  t.equal(plan({ taints: [{ key: 'karpenter.sh/disrupted', effect: 'NoSchedule' }] }, { phase: 'verifying', verifySince: iso(T0 - minutes(4)) }), 'taken-over')
  t.equal(plan({ unschedulable: true }, { phase: 'quarantined' }), undefined)
  t.equal(plan({}, { phase: 'quarantined' }), 'operator-uncordoned')
  t.equal(plan({}, { phase: 'cooldown', cooldownUntil: iso(T0) }), 'end-cooldown')
  const still = { phase: 'cooldown' as const, cooldownUntil: iso(T0), startedAt: iso(T0 - minutes(60)), provenAt: iso(T0 - minutes(40)), alerts: [firingAlert({ receivedAt: iso(T0 - minutes(61)), lastSeen: iso(T0 - minutes(10)) })] }
  t.equal(plan({}, still), 'not-fixed', 'delivered again after the fix was proven')
})

t.test('dueAt: the engine wakes a node exactly when its plan can change by itself', async t => {
  const config = policy({ verifyDwellMs: minutes(5), alertTtlMs: minutes(130) })
  t.equal(dueAt(view('n', { record: record({ phase: 'verifying', verifySince: iso(T0) }) }), T0, config), T0 + minutes(5))
  t.equal(dueAt(view('n', { record: record({ phase: 'cooldown', cooldownUntil: iso(T0 + minutes(30)) }) }), T0, config), T0 + minutes(30))
  t.equal(dueAt(view('n', { record: record(pending(1, { alerts: [firingAlert({ lastSeen: iso(T0 - minutes(100)) })] })) }), T0, config), T0 + minutes(30), 'the alert goes stale then')
  t.equal(dueAt(view('n'), T0, config), undefined)
})

t.test('a departed node is proven once the pool is back at its size, every newcomer in service, for VERIFY_DWELL', async t => {
  const config = policy({ verifyDwellMs: minutes(5) })
  const index = createFleet(config)
  for (const v of fleet({ data: 4 }).values()) index.upsert({ ...v, pool: 'data', createdAt: T0 - minutes(600) })
  const entry = { node: 'data-5', uid: 'u', pool: 'data', zone: 'zone-a', goneAt: iso(T0 - minutes(20)), expected: 5, deadline: iso(T0 + minutes(10)) }
  index.setState({ ...index.state, departed: new Map([['data-5', entry]]) })
  let step = progressDeparted(index, T0, config)
  t.equal(step.departed, index.state.departed, 'not back yet: unchanged, nothing to write')
  t.equal(step.wakeAt, T0 + minutes(10), 'wakes at the deadline')
  index.upsert(view('data-6', { pool: 'data', ready: false, createdAt: T0 - minutes(1) }))
  t.equal(progressDeparted(index, T0, config).departed, index.state.departed, 'the newcomer is not Ready yet')
  index.upsert(view('data-6', { pool: 'data', createdAt: T0 - minutes(1) }))
  step = progressDeparted(index, T0, config)
  t.equal(step.departed.get('data-5')?.backSince, iso(T0))
  index.setState({ ...index.state, departed: step.departed })
  step = progressDeparted(index, T0 + minutes(5), config)
  t.same(step.proven.map(e => e.node), ['data-5'])
  t.equal(step.departed.size, 0)
})

t.test('a departed node whose pool is not whole by its deadline is held for an operator', async t => {
  const config = policy({ verifyDwellMs: minutes(5) })
  const index = fleetOf(fleet({ data: 4 }).values(), config)
  index.setState({ ...index.state, departed: new Map([['data-5', { node: 'data-5', uid: 'u', pool: 'data', zone: 'zone-a', goneAt: iso(T0 - minutes(40)), expected: 5, deadline: iso(T0 - minutes(10)) }]]) })
  const step = progressDeparted(index, T0, config)
  t.match(step.failed, [{ node: 'data-5', failed: /pool data not back at 5 nodes in service by .*REPLACE_TIMEOUT/ }])
  t.ok(step.departed.has('data-5'), 'still holding its slot')
})
