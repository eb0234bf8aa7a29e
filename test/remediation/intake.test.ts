import t from 'tap'
import { triage } from '../../src/remediation/intake.ts'
import { iso } from '../../src/time.ts'
import { alert, firingAlert, fleet, minutes, policy, T0 } from '../support/core.ts'

const config = policy({ maxConcurrentDrains: 1, minFiringAgeMs: minutes(2), poolSpacingMs: 0, breakerMinNodes: 3 })

t.test('a valid firing alert makes its node pending and, with a free slot, remediate now', async t => {
  const { decisions, changes } = triage([alert('app-1')], fleet({ app: 10 }), T0, config, new Map())
  t.equal(decisions[0]!.action, 'remediate')
  t.equal(decisions[0]!.node, 'app-1')
  t.match(decisions[0]!.reason, /remediation starts now/)
  const change = changes.get('app-1')!
  t.equal(change.record.phase, 'pending')
  t.equal(change.record.alert?.action, 'replace', 'remediation="drain" maps to the configured provider action')
  t.same(change.record.history.map(h => `${h.from}->${h.to}`), ['healthy->pending'])
  t.equal(change.unschedulable, undefined, 'pending does not touch schedulability yet')
})

t.test('the opt-in value chooses the provider action', async t => {
  const { changes } = triage([alert('app-1', { labels: { remediation: 'reboot' } })], fleet({ app: 10 }), T0, config, new Map())
  t.equal(changes.get('app-1')!.record.alert?.action, 'reboot')
})

t.test('decisions keep the order of the alerts and say why', async t => {
  const alerts = [alert('app-1'), alert(undefined), alert('ghost'), alert('app-2')]
  const { decisions } = triage(alerts, fleet({ app: 10 }), T0, config, new Map())
  t.same(decisions.map(d => [d.node, d.action]), [['app-1', 'remediate'], [null, 'ignored'], ['ghost', 'ignored'], ['app-2', 'deferred']])
  t.match(decisions[3]!.reason, /deferred: 1 of 1 drain slots in use/)
  t.equal(decisions[3]!.rule, 'semaphore')
})

t.test('a young alert is deferred by hysteresis, not ignored', async t => {
  const { decisions, changes } = triage([alert('app-1', { startsAt: iso(T0 - minutes(1)) })], fleet({ app: 10 }), T0, config, new Map())
  t.equal(decisions[0]!.action, 'deferred')
  t.equal(decisions[0]!.rule, 'hysteresis')
  t.equal(changes.get('app-1')!.record.phase, 'pending')
})

t.test('an alert for a node in cooldown is deferred until the cooldown ends', async t => {
  const snapshot = fleet({ app: 10 }, { 'app-1': { phase: 'cooldown', cooldownUntil: iso(T0 + minutes(20)), alert: firingAlert({ fingerprint: 'old' }) } })
  const { decisions } = triage([alert('app-1')], snapshot, T0, config, new Map())
  t.equal(decisions[0]!.action, 'deferred')
  t.equal(decisions[0]!.rule, 'cooldown')
})

t.test('a node already being remediated ignores further alerts; a failed one asks for an operator', async t => {
  let snapshot = fleet({ app: 10 }, { 'app-1': { phase: 'draining', alert: firingAlert({ fingerprint: 'other' }) } })
  let result = triage([alert('app-1')], snapshot, T0, config, new Map())
  t.match(result.decisions[0]!.reason, /node already draining for NodeDiskIOPSSaturated/)
  t.equal(result.changes.size, 0)
  snapshot = fleet({ app: 10 }, { 'app-1': { phase: 'failed', outcome: 'drain-timeout', alert: firingAlert({ fingerprint: 'other' }) } })
  result = triage([alert('app-1')], snapshot, T0, config, new Map())
  t.match(result.decisions[0]!.reason, /previous remediation failed \(drain-timeout\); uncordon the node to release it/)
})

t.test('resolved before the drain began: cancelled, and a cordon restored to the operator\'s choice', async t => {
  const tracked = firingAlert({ fingerprint: 'fp-app-1', startsAt: iso(T0 - minutes(10)) })
  const pending = fleet({ app: 10 }, { 'app-1': { phase: 'pending', alert: tracked } })
  const resolved = alert('app-1', { status: 'resolved', endsAt: iso(T0 - 1000) })
  let result = triage([resolved], pending, T0, config, new Map())
  t.equal(result.decisions[0]!.action, 'cancelled')
  t.equal(result.changes.get('app-1')!.record.phase, 'cancelled')
  t.equal(result.changes.get('app-1')!.unschedulable, undefined, 'never cordoned: nothing to restore')

  for (const was of [false, true]) {
    const cordoned = fleet({ app: 10 }, { 'app-1': { phase: 'cordoned', alert: tracked, wasUnschedulable: was } })
    result = triage([resolved], cordoned, T0, config, new Map())
    t.equal(result.changes.get('app-1')!.unschedulable, was, `restores unschedulable=${was}`)
  }

  const draining = fleet({ app: 10 }, { 'app-1': { phase: 'draining', alert: tracked } })
  result = triage([resolved], draining, T0, config, new Map())
  t.equal(result.decisions[0]!.action, 'ignored')
  t.equal(result.changes.get('app-1')!.record.phase, 'draining', 'a drain under way continues')
  t.equal(result.changes.get('app-1')!.record.alert?.status, 'resolved', 'but the resolution is recorded')
})

t.test('a resolved alert that drove nothing changes nothing', async t => {
  const result = triage([alert('app-1', { status: 'resolved' })], fleet({ app: 10 }), T0, config, new Map())
  t.equal(result.decisions[0]!.action, 'ignored')
  t.equal(result.changes.size, 0)
})

t.test('replaying the same notification changes nothing the second time', async t => {
  const payload = [alert('app-1'), alert('app-2', { labels: { remediation: 'reboot' } })]
  const first = triage(payload, fleet({ app: 10 }), T0, config, new Map())
  const second = triage(payload, first.snapshot, T0 + 1000, config, new Map())
  t.equal(second.changes.size, 0)
  t.ok(second.decisions.every(d => d.action === 'ignored' && /duplicate/.test(d.reason)))
})

t.test('a re-fire after resolution counts toward flapping and is eventually held', async t => {
  const flappy = policy({ ...config, flapMaxRefires: 1 })
  let snapshot = fleet({ app: 10 })
  let last
  for (const [i, m] of [30, 20, 10].entries()) {
    const firing = alert('app-1', { startsAt: iso(T0 - minutes(m)) })
    last = triage([firing], snapshot, T0 - minutes(m) + minutes(3), flappy, new Map())
    snapshot = new Map(last.snapshot)
    if (i < 2) snapshot = new Map(triage([{ ...firing, status: 'resolved' }], snapshot, T0 - minutes(m) + minutes(4), flappy, new Map()).snapshot)
  }
  t.equal(last!.decisions[0]!.action, 'deferred')
  t.match(last!.decisions[0]!.reason, /flapping: re-fired 2 times/)
})

t.test('several alerts for one node in one notification: the first drives, the rest are ignored', async t => {
  const result = triage([alert('app-1'), alert('app-1', { fingerprint: 'second', labels: { alertname: 'DbLatency' } })], fleet({ app: 10 }), T0, config, new Map())
  t.same(result.decisions.map(d => d.action), ['remediate', 'ignored'])
  t.match(result.decisions[1]!.reason, /node already pending for NodeDiskIOPSSaturated/)
})

t.test('the breaker in a storm: the notification that trips it defers every node in the pool', async t => {
  const storm = ['app-1', 'app-2', 'app-3'].map(n => alert(n))
  const result = triage(storm, fleet({ app: 10, data: 10 }), T0, config, new Map())
  t.ok(result.decisions.every(d => d.action === 'deferred' && d.rule === 'circuit-breaker'))
  const other = triage([alert('data-1')], result.snapshot, T0, config, new Map())
  t.equal(other.decisions[0]!.action, 'remediate', 'another pool is not affected')
})
