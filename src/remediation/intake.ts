import { episodeKey, type AlertmanagerView } from '../alerts/alertmanager.ts'
import type { NodeAlert } from '../alerts/node-alert.ts'
import type { Block, PolicyConfig, RuleName } from '../policy/config.ts'
import { endOf, isLive, liveAlerts } from '../policy/expiry.ts'
import { recordFiring } from '../policy/hysteresis.ts'
import { validateAlert } from '../policy/validation.ts'
import { iso, parseTime } from '../time.ts'
import { emptyRecord, stuckPhases, transition, workingPhases, type NodeRecord, type TrackedAlert } from './record.ts'
import type { NodeView, Snapshot } from './snapshot.ts'
import { cancelPending, notFixed, type Change } from './transitions.ts'

export type Action = 'remediate' | 'ignored' | 'deferred' | 'cancelled'

/** What the service tells the sender about one alert. */
export type Decision = {
  node: string | null
  alertname: string
  fingerprint: string
  action: Action
  reason: string
  rule?: RuleName
  /** The blocking rule's numbers (never persisted: they change from one decision to the next). */
  detail?: Readonly<Record<string, string | number>>
}

/** An alert's effect on its node before fleet-wide rules are applied: `pending` still needs a turn. */
export type AlertOutcome = { kind: 'ignored' | 'cancelled' | 'pending', reason: string, rule?: RuleName }

/** Episodes kept per node: every live one, and ended ones while ALERT_TTL remembers them. */
const episodeLimit = 16

/**
 * How stale a recorded `lastSeen` may get before a repeat notification refreshes it. Refreshing on
 * every repeat would be a write per alert per repeat_interval; never refreshing would let ALERT_TTL
 * expire a live alert. A quarter of the TTL keeps a live alert far from expiry.
 */
const refreshAfter = (config: Pick<PolicyConfig, 'alertTtlMs'>) => config.alertTtlMs / 4

/** Ended episodes are forgotten once ALERT_TTL has passed: their late deliveries cannot matter then. */
function prune (alerts: TrackedAlert[], now: number, config: PolicyConfig): TrackedAlert[] {
  const kept = alerts.filter(alert => isLive(alert, now, config) || parseTime(alert.lastSeen) > now - config.alertTtlMs)
  return kept.length <= episodeLimit ? kept : kept.slice(kept.length - episodeLimit)
}

const afterFixPhases = new Set<NodeRecord['phase']>(['verifying', 'cooldown', 'healthy'])

const sameEpisode = (alert: NodeAlert) => (tracked: TrackedAlert) => tracked.fingerprint === alert.fingerprint && tracked.startsAt === alert.startsAtIso

function track (alert: NodeAlert, now: number, config: PolicyConfig): TrackedAlert {
  const at = iso(now)
  return {
    alertname: alert.alertname,
    fingerprint: alert.fingerprint,
    startsAt: alert.startsAtIso,
    status: alert.status,
    action: config.optInActions[alert.optIn!]!,
    source: alert.source,
    receivedAt: at,
    lastSeen: at,
    ...(alert.summary === undefined ? {} : { summary: alert.summary }),
    ...(alert.source === 'fault' && alert.endsAt !== null ? { endsAt: iso(alert.endsAt) } : {})
  }
}

const withAlerts = (record: NodeRecord, alerts: TrackedAlert[], now: number, config: PolicyConfig): NodeRecord => ({ ...record, alerts: prune(alerts, now, config) })

function applyResolved (record: NodeRecord, alert: NodeAlert, now: number, config: PolicyConfig): { record?: NodeRecord, outcome: AlertOutcome } {
  const index = record.alerts.findIndex(sameEpisode(alert))
  const tracked = record.alerts[index]
  if (tracked?.status === 'resolved') return { outcome: { kind: 'ignored', rule: 'validation', reason: 'duplicate: already resolved' } }
  const alerts = [...record.alerts]
  if (tracked === undefined) {
    // Remembered so that a late firing of the same episode (notifications can arrive out of order) is ignored.
    alerts.push(track(alert, now, config))
  } else {
    const counted = endOf(tracked, config)
    alerts[index] = { ...tracked, status: 'resolved', ...(counted === undefined ? {} : { endedAt: iso(Math.min(now, counted)) }) }
  }
  return { record: withAlerts(record, alerts, now, config), outcome: { kind: 'ignored', reason: record.phase === 'healthy' ? 'resolved; recorded' : `resolved; recorded (node is ${record.phase})` } }
}

type Firing = { record?: NodeRecord, outcome?: AlertOutcome, news: boolean, stillFiringAfterFix: boolean }

function applyFiringEpisode (record: NodeRecord, alert: NodeAlert, now: number, config: PolicyConfig): Firing {
  const index = record.alerts.findIndex(sameEpisode(alert))
  const tracked = record.alerts[index]
  if (tracked === undefined) {
    const alerts = [...record.alerts, track(alert, now, config)]
    return { record: { ...withAlerts(record, alerts, now, config), firings: recordFiring(record.firings, alert.startsAtIso, now, config) }, news: true, stillFiringAfterFix: false }
  }
  if (tracked.status === 'resolved') {
    return { outcome: { kind: 'ignored', rule: 'validation', reason: `duplicate: alert ${alert.fingerprint} already resolved (notification out of order)` }, news: false, stillFiringAfterFix: false }
  }
  const revived = tracked.status !== 'firing' || !isLive(tracked, now, config)
  // Back in service, the first repeat is news: the fix did not make Alertmanager stop sending it.
  const firstSinceBack = afterFixPhases.has(record.phase) && parseTime(tracked.lastSeen) < parseTime(record.since)
  const refresh = revived || firstSinceBack || now - parseTime(tracked.lastSeen) >= refreshAfter(config)
  // A repeat once healthy again: the episode that drove the last remediation is still firing.
  const stillFiringAfterFix = record.phase === 'healthy' && record.startedAt !== undefined && parseTime(tracked.receivedAt) <= parseTime(record.startedAt)
  if (!refresh && !stillFiringAfterFix) return { outcome: { kind: 'ignored', rule: 'validation', reason: `duplicate: alert ${alert.fingerprint} is already recorded` }, news: false, stillFiringAfterFix: false }
  const alerts = [...record.alerts]
  const { endedAt: _ended, ...rest } = tracked
  alerts[index] = { ...rest, status: 'firing', lastSeen: iso(now), ...(revived ? { revivedAt: iso(now) } : {}) }
  return { record: withAlerts(record, alerts, now, config), news: revived, stillFiringAfterFix }
}

function applyFiring (node: NodeView, record: NodeRecord, alert: NodeAlert, now: number, config: PolicyConfig): { record?: NodeRecord, change?: Change, outcome: AlertOutcome } {
  const { record: updated, outcome, news, stillFiringAfterFix } = applyFiringEpisode(record, alert, now, config)
  if (updated === undefined) return { outcome: outcome! }
  const reason = `alert ${alert.alertname} firing since ${alert.startsAtIso}`
  const phase = record.phase
  if (phase === 'pending') return { record: updated, outcome: { kind: 'pending', reason } }
  if (workingPhases.has(phase)) return { record: updated, outcome: { kind: 'ignored', reason: `node already ${phase}; alert recorded` } }
  if (stuckPhases.has(phase)) return { record: updated, outcome: { kind: 'ignored', reason: `node is ${phase} (${record.outcome}) and held for an operator; uncordon it to release it. Alert recorded` } }
  if (phase === 'verifying') {
    if (!news) return { record: updated, outcome: { kind: 'ignored', reason: 'node is proving its fix; alert recorded' } }
    const why = `${reason}: re-fired while the fix was being verified; the next rung is needed`
    return { record: updated, change: notFixed(updated, now, why), outcome: { kind: 'pending', reason: why } }
  }
  if (phase === 'cooldown' && !news) return { record: updated, outcome: { kind: 'ignored', reason: 'node is in cooldown; alert recorded' } }
  if (phase === 'healthy' && stillFiringAfterFix) {
    const why = `${reason}: still firing after the last remediation; the next rung is needed`
    return { record: updated, change: notFixed(updated, now, why), outcome: { kind: 'pending', reason: why } }
  }
  if (!news) return { record: updated, outcome: { kind: 'ignored', rule: 'validation', reason: `duplicate: alert ${alert.fingerprint} is already recorded` } }
  return {
    record: updated,
    change: { record: transition(updated, 'pending', now, reason, { deferred: undefined, uid: node.uid }) },
    outcome: { kind: 'pending', reason }
  }
}

/**
 * What Alertmanager believes, laid over a node's record: an episode it no longer holds stopped
 * counting (as if resolved); one it silences or inhibits is `silenced`; one it holds active but we
 * had let go is firing again, and one still active is seen now (so ALERT_TTL never expires it while
 * Alertmanager has it). Pure; returns undefined when nothing changes.
 */
export function reconcileWithAlertmanager (record: NodeRecord, view: AlertmanagerView, now: number, config: PolicyConfig): NodeRecord | undefined {
  let changed = false
  const at = iso(now)
  const alerts = record.alerts.map(alert => {
    if (alert.source !== 'alertmanager' || alert.status === 'resolved') return alert
    const state = view.get(episodeKey(alert.fingerprint, parseTime(alert.startsAt)))
    const live = isLive(alert, now, config)
    if (state === undefined) {
      if (!live) return alert
      changed = true
      return { ...alert, status: 'resolved' as const, endedAt: at }
    }
    if (state === 'suppressed') {
      if (alert.status === 'silenced') return alert
      changed = true
      return { ...alert, status: 'silenced' as const, endedAt: at }
    }
    // Active there: a live alert is as good as repeated. One that stopped counting (silenced,
    // expired) comes back only with Alertmanager's next notification, which makes it news for its
    // node whatever the order; a revival here would make that notification a duplicate.
    if (!live || now - parseTime(alert.lastSeen) < refreshAfter(config)) return alert
    changed = true
    return { ...alert, lastSeen: at }
  })
  return changed ? { ...record, alerts } : undefined
}

/** After a resolve: a pending (or cordoned, not yet draining) node whose alerts all stopped counting is let go. */
function letGoIfQuiet (record: NodeRecord, alert: NodeAlert, now: number, config: PolicyConfig): { change?: Change, outcome?: AlertOutcome } {
  if ((record.phase !== 'pending' && record.phase !== 'cordoned') || liveAlerts(record, now, config).length > 0) return {}
  const reason = `alert ${alert.alertname} resolved before the drain began; no alert of the node is firing`
  return { change: cancelPending(record, now, reason), outcome: { kind: 'cancelled', reason } }
}

/** One alert's effect on one node. Pure: the same inputs always give the same change. */
export function applyAlert (node: NodeView | undefined, alert: NodeAlert, now: number, config: PolicyConfig): { change?: Change, outcome: AlertOutcome } {
  const invalid = validateAlert(alert, node, now, config)
  if (invalid !== undefined) return { outcome: { kind: 'ignored', rule: invalid.rule, reason: invalid.reason } }
  const record = node!.record ?? emptyRecord(now, node!.uid)
  if (alert.status === 'resolved') {
    const resolved = applyResolved(record, alert, now, config)
    if (resolved.record === undefined) return { outcome: resolved.outcome }
    const quiet = letGoIfQuiet(resolved.record, alert, now, config)
    return { change: quiet.change ?? { record: resolved.record }, outcome: quiet.outcome ?? resolved.outcome }
  }
  const firing = applyFiring(node!, record, alert, now, config)
  if (firing.change !== undefined) return { change: firing.change, outcome: firing.outcome }
  return firing.record === undefined ? { outcome: firing.outcome } : { change: { record: firing.record }, outcome: firing.outcome }
}

/** A later change to the same node keeps an earlier one's schedulability unless it sets its own. */
function combine (earlier: Change | undefined, later: Change): Change {
  const unschedulable = later.unschedulable ?? earlier?.unschedulable
  return unschedulable === undefined ? { record: later.record } : { record: later.record, unschedulable }
}

/**
 * All of one node's alerts from one notification. Firing ones first: when one notification carries
 * an episode both firing and resolved, resolved wins.
 */
export function applyNodeAlerts (node: NodeView | undefined, alerts: readonly NodeAlert[], now: number, config: PolicyConfig): { change?: Change, outcomes: AlertOutcome[] } {
  const order = alerts.map((_, i) => i).sort((a, b) => Number(alerts[a]!.status === 'resolved') - Number(alerts[b]!.status === 'resolved') || a - b)
  const outcomes: AlertOutcome[] = new Array(alerts.length)
  let view = node
  let change: Change | undefined
  for (const i of order) {
    const result = applyAlert(view, alerts[i]!, now, config)
    if (result.change !== undefined) {
      change = combine(change, result.change)
      view = { ...view!, record: change.record }
    }
    outcomes[i] = result.outcome
  }
  return change === undefined ? { outcomes } : { change, outcomes }
}

/** Groups a notification's alerts by node, keeping each alert's position. */
export function groupByNode (alerts: readonly NodeAlert[]): Map<string | undefined, number[]> {
  const groups = new Map<string | undefined, number[]>()
  for (const [i, alert] of alerts.entries()) {
    const group = groups.get(alert.node)
    if (group === undefined) groups.set(alert.node, [i])
    else group.push(i)
  }
  return groups
}

/** What a notification changes, node by node, decided on the given fleet. Pure: nothing is mutated. */
export function triage (alerts: readonly NodeAlert[], fleet: Snapshot, now: number, config: PolicyConfig): { outcomes: AlertOutcome[], changes: Map<string, Change> } {
  const outcomes: AlertOutcome[] = new Array(alerts.length)
  const changes = new Map<string, Change>()
  for (const [name, indexes] of groupByNode(alerts)) {
    const own = indexes.map(i => alerts[i]!)
    const node = name === undefined ? undefined : fleet.get(name)
    const result = applyNodeAlerts(node, own, now, config)
    indexes.forEach((alertIndex, j) => { outcomes[alertIndex] = result.outcomes[j]! })
    if (result.change !== undefined && node !== undefined) changes.set(node.name, result.change)
  }
  return { outcomes, changes }
}

/**
 * Turns per-node outcomes into decisions. Pending nodes ask the fleet-wide rules (`blockOf`,
 * computed on the fleet after the notification) whether they start now.
 */
export function decide (alerts: readonly NodeAlert[], outcomes: readonly AlertOutcome[], blockOf: (node: string) => Block | undefined): Decision[] {
  return alerts.map((alert, i) => {
    const outcome = outcomes[i]!
    const node = alert.node ?? null
    const base = { node, alertname: alert.alertname, fingerprint: alert.fingerprint }
    if (outcome.kind !== 'pending') return outcome.rule === undefined ? { ...base, action: outcome.kind, reason: outcome.reason } : { ...base, action: outcome.kind, reason: outcome.reason, rule: outcome.rule }
    const block = blockOf(alert.node!)
    if (block === undefined) return { ...base, action: 'remediate', reason: `${outcome.reason}; remediation starts now` }
    const decision: Decision = { ...base, action: 'deferred', reason: `${outcome.reason}; deferred: ${block.reason}`, rule: block.rule }
    if (block.detail !== undefined) decision.detail = block.detail
    return decision
  })
}
