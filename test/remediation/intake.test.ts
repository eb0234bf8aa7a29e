import t from 'tap'
import { toNodeAlert } from '../../src/alerts/node-alert.ts'
import type { WebhookAlert } from '../../src/alerts/webhook.ts'
import type { PolicyConfig } from '../../src/policy/config.ts'
import type { Fleet } from '../../src/remediation/fleet.ts'
import { episodeKey } from '../../src/alerts/alertmanager.ts'
import { decide, reconcileWithAlertmanager, triage } from '../../src/remediation/intake.ts'
import type { NodeRecord } from '../../src/remediation/record.ts'
import { nextToStart } from '../../src/remediation/schedule.ts'
import { iso } from '../../src/time.ts'
import { alert, firingAlert, fleet, fleetOf, minutes, policy, T0 } from '../support/core.ts'

const config = policy({ minFiringAgeMs: minutes(2), stormSettleMs: 0, poolSpacingMs: 0, alertTtlMs: minutes(130) })

/** One notification through the pure core, as the engine runs it: triage, persist (here: into the fleet), decide. */
function deliver (index: Fleet, alerts: WebhookAlert[], now = T0, c: PolicyConfig = config) {
  const nodeAlerts = alerts.map(a => toNodeAlert(a, c))
  const { outcomes, changes } = triage(nodeAlerts, index, now, c)
  for (const [name, change] of changes) {
    const v = index.get(name)!
    index.upsert({ ...v, record: change.record, unschedulable: change.unschedulable ?? v.unschedulable })
  }
  const schedule = nextToStart(index, now, c)
  return { decisions: decide(nodeAlerts, outcomes, name => schedule.blocked.get(name)), changes }
}
const recordOf = (index: Fleet, name: string): NodeRecord => index.get(name)!.record!
const resolvedOf = (a: WebhookAlert, at = T0): WebhookAlert => ({ ...a, status: 'resolved', endsAt: iso(at) })

t.test('a valid firing alert makes its node pending and, with a free slot, remediate now', async t => {
  const index = fleetOf(fleet({ app: 5 }).values())
  const { decisions } = deliver(index, [alert('app-1')])
  t.match(decisions, [{ node: 'app-1', action: 'remediate', reason: /firing since .*; remediation starts now/ }])
  const record = recordOf(index, 'app-1')
  t.equal(record.phase, 'pending')
  t.equal(record.uid, 'uid-app-1', 'tied to the Node object')
  t.match(record.alerts, [{ fingerprint: 'fp-app-1', status: 'firing', action: 'ladder', receivedAt: iso(T0), lastSeen: iso(T0) }])
})

t.test('the opt-in value chooses what the alert asks for', async t => {
  const index = fleetOf(fleet({ app: 5 }).values())
  deliver(index, [alert('app-1', { labels: { remediation: 'reboot' } }), alert('app-3', { labels: { remediation: 'replace' } })])
  t.equal(recordOf(index, 'app-1').alerts[0]!.action, 'reboot')
  t.equal(recordOf(index, 'app-3').alerts[0]!.action, 'replace')
})

t.test('a young alert is deferred by hysteresis, not ignored; a node in cooldown waits for its end', async t => {
  const index = fleetOf(fleet({ app: 5 }, { 'app-3': { phase: 'cooldown', cooldownUntil: iso(T0 + minutes(5)) } }).values())
  const { decisions } = deliver(index, [alert('app-1', { startsAt: iso(T0 - minutes(1)) }), alert('app-3')])
  t.match(decisions, [{ action: 'deferred', rule: 'hysteresis' }, { action: 'deferred', rule: 'cooldown' }])
})

t.test('resolved before the drain began: cancelled, and a cordon restored to the operator\'s choice', async t => {
  const index = fleetOf(fleet({ app: 5 }).values())
  const a = alert('app-1')
  deliver(index, [a])
  index.upsert({ ...index.get('app-1')!, record: { ...recordOf(index, 'app-1'), phase: 'cordoned', wasUnschedulable: false }, unschedulable: true })
  const { decisions, changes } = deliver(index, [resolvedOf(a)])
  t.match(decisions, [{ action: 'cancelled', reason: /resolved before the drain began/ }])
  t.equal(changes.get('app-1')!.unschedulable, false)
  t.equal(recordOf(index, 'app-1').alerts[0]!.status, 'resolved')
})

t.test('a resolved episode is remembered even for a node we never tracked: its late firing is ignored', async t => {
  const index = fleetOf(fleet({ app: 5 }).values())
  const a = alert('app-4')
  const first = deliver(index, [resolvedOf(a)])
  t.match(first.decisions, [{ action: 'ignored', reason: /resolved; recorded/ }])
  t.equal(recordOf(index, 'app-4').phase, 'healthy')
  const late = deliver(index, [a])
  t.match(late.decisions, [{ action: 'ignored', rule: 'validation', reason: /already resolved \(notification out of order\)/ }])
  t.equal(recordOf(index, 'app-4').phase, 'healthy', 'never pending')
  t.equal(late.changes.size, 0, 'nothing written')
})

t.test('firing and resolved of one episode in one notification: resolved wins', async t => {
  const index = fleetOf(fleet({ app: 5 }).values())
  const a = alert('app-2')
  const { decisions } = deliver(index, [resolvedOf(a), a])
  t.equal(recordOf(index, 'app-2').phase, 'cancelled')
  t.equal(decisions[0]!.action, 'cancelled')
})

t.test('all alerts of a node count: cancelled only when every one has resolved; the strongest drives', async t => {
  const index = fleetOf(fleet({ app: 5 }).values())
  const disk = alert('app-1', { labels: { remediation: 'reboot' } })
  const db = alert('app-1', { fingerprint: 'db-app-1', labels: { alertname: 'NodeDatabaseConnectionLatencyHigh', remediation: 'replace' } })
  deliver(index, [disk])
  deliver(index, [db])
  t.equal(recordOf(index, 'app-1').alerts.length, 2, 'the second alert is recorded, not lost')
  t.equal(nextToStart(index, T0, config).start[0]!.action, 'replace', 'replace over reboot')
  const one = deliver(index, [resolvedOf(disk)])
  t.equal(one.decisions[0]!.action, 'ignored')
  t.equal(recordOf(index, 'app-1').phase, 'pending', 'the other alert still fires')
  const both = deliver(index, [resolvedOf(db)])
  t.equal(both.decisions[0]!.action, 'cancelled')
})

t.test('a replay changes nothing; a repeat refreshes when it was last seen, coarsely, so it never expires while sent', async t => {
  const index = fleetOf(fleet({ app: 5 }).values())
  const a = alert('app-1')
  deliver(index, [a])
  t.equal(deliver(index, [a], T0 + minutes(1)).changes.size, 0, 'a repeat within ALERT_TTL/4 writes nothing')
  const refreshed = deliver(index, [a], T0 + minutes(40))
  t.equal(refreshed.changes.size, 1, 'a repeat after ALERT_TTL/4 writes the new time')
  t.equal(recordOf(index, 'app-1').alerts[0]!.lastSeen, iso(T0 + minutes(40)))
  t.equal(recordOf(index, 'app-1').alerts[0]!.receivedAt, iso(T0), 'first recorded stays')
})

t.test('an alert that stopped counting (stale, silenced) comes back when Alertmanager sends it again', async t => {
  const index = fleetOf(fleet({ app: 5 }, { 'app-1': { phase: 'cancelled', alerts: [firingAlert({ fingerprint: 'fp-app-1', startsAt: iso(T0 - minutes(10)), status: 'silenced', endedAt: iso(T0 - minutes(1)) })] } }).values())
  const { decisions } = deliver(index, [alert('app-1')])
  t.equal(recordOf(index, 'app-1').phase, 'pending')
  t.equal(decisions[0]!.action, 'remediate')
  t.equal(recordOf(index, 'app-1').alerts[0]!.status, 'firing')
})

t.test('while the fix is verified: a new episode means not fixed (back to pending); the same episode is only recorded', async t => {
  const started = iso(T0 - minutes(20))
  const driving = firingAlert({ fingerprint: 'fp-app-1', startsAt: iso(T0 - minutes(10)), receivedAt: started })
  const index = fleetOf(fleet({ app: 5 }, { 'app-1': { phase: 'verifying', since: iso(T0 - minutes(1)), verifySince: iso(T0 - minutes(1)), startedAt: started, alerts: [driving] } }).values())
  const same = deliver(index, [alert('app-1')])
  t.match(same.decisions, [{ action: 'ignored', reason: /proving its fix/ }])
  t.equal(recordOf(index, 'app-1').phase, 'verifying')
  const refire = deliver(index, [alert('app-1', { startsAt: iso(T0 - minutes(2)) })])
  t.match(refire.decisions, [{ reason: /re-fired while the fix was being verified/ }])
  t.equal(recordOf(index, 'app-1').phase, 'pending')
  t.equal(recordOf(index, 'app-1').outcome, 'not-fixed')
})

t.test('healthy again, yet Alertmanager still sends the episode that drove the last remediation: not fixed', async t => {
  const started = iso(T0 - minutes(60))
  const driving = firingAlert({ fingerprint: 'fp-app-1', startsAt: iso(T0 - minutes(10)), receivedAt: iso(T0 - minutes(61)), lastSeen: iso(T0 - minutes(61)) })
  const index = fleetOf(fleet({ app: 5 }, { 'app-1': { phase: 'healthy', since: iso(T0 - minutes(5)), startedAt: started, provenAt: iso(T0 - minutes(40)), alerts: [driving] } }).values())
  const { decisions } = deliver(index, [alert('app-1')])
  t.match(decisions, [{ reason: /still firing after the last remediation/ }])
  t.equal(recordOf(index, 'app-1').phase, 'pending')
})

t.test('a node being worked on, or held for an operator, records new alerts and starts nothing', async t => {
  const index = fleetOf(fleet({ app: 5 }, { 'app-1': { phase: 'draining' }, 'app-2': { phase: 'failed', outcome: 'drain-timeout' } }).values())
  const { decisions } = deliver(index, [alert('app-1'), alert('app-2')])
  t.match(decisions, [{ action: 'ignored', reason: /node already draining; alert recorded/ }, { action: 'ignored', reason: /failed \(drain-timeout\) and held for an operator; uncordon it/ }])
  t.equal(recordOf(index, 'app-1').alerts.length, 1)
})

t.test('triage is pure: the fleet it reads is not changed', async t => {
  const index = fleetOf(fleet({ app: 5 }).values())
  const before = index.get('app-1')
  triage([toNodeAlert(alert('app-1'), config)], index, T0, config)
  t.equal(index.get('app-1'), before)
})

t.test('decisions keep the order of the alerts and say why', async t => {
  const index = fleetOf(fleet({ app: 5 }).values())
  const { decisions } = deliver(index, [alert('app-1'), alert('ghost'), alert('app-2', { labels: { remediation: 'nope' } })])
  t.same(decisions.map(d => [d.node, d.action]), [['app-1', 'remediate'], ['ghost', 'ignored'], ['app-2', 'ignored']])
  t.match(decisions[1]!.reason, /node ghost is not in the cluster/)
})

t.test('Alertmanager\'s view laid over a record: vanished episodes resolve, silenced ones stop counting, active ones are seen now; one that had stopped waits for its notification', async t => {
  const at = (m: number) => iso(T0 - minutes(m))
  const record = {
    ...recordOf(fleetOf(fleet({ app: 1 }, { 'app-1': { phase: 'pending', alerts: [
      firingAlert({ fingerprint: 'gone', startsAt: at(30) }),
      firingAlert({ fingerprint: 'quiet', startsAt: at(20) }),
      firingAlert({ fingerprint: 'loud', startsAt: at(10), lastSeen: at(60) }),
      firingAlert({ fingerprint: 'back', startsAt: at(5), status: 'silenced', endedAt: at(1) })
    ] } }).values()), 'app-1')
  }
  const view = new Map([[episodeKey('quiet', T0 - minutes(20)), 'suppressed' as const], [episodeKey('loud', T0 - minutes(10)), 'active' as const], [episodeKey('back', T0 - minutes(5)), 'active' as const]])
  const next = reconcileWithAlertmanager(record, view, T0, config)!
  t.same(next.alerts.map(a => [a.fingerprint, a.status]), [['gone', 'resolved'], ['quiet', 'silenced'], ['loud', 'firing'], ['back', 'silenced']], 'a revival comes with the notification: then it is news for its node, whatever the order')
  t.equal(next.alerts[2]!.lastSeen, iso(T0), 'Alertmanager still has it: seen now')
  t.equal(reconcileWithAlertmanager(next, view, T0 + 1000, config), undefined, 'the same view again changes nothing')
})
