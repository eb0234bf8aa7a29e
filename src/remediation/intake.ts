import { toNodeAlert, type NodeAlert } from '../alerts/node-alert.ts'
import type { WebhookAlert } from '../alerts/webhook.ts'
import { updateBreakers, type BreakerMemory } from '../policy/circuit-breaker.ts'
import type { PolicyConfig, RuleName } from '../policy/config.ts'
import { recordFiring } from '../policy/hysteresis.ts'
import { validateFiring } from '../policy/validation.ts'
import { activePhases, emptyRecord, iso, transition, type TrackedAlert } from './record.ts'
import { nextToStart } from './schedule.ts'
import type { NodeView, Snapshot } from './snapshot.ts'
import { cancelPending, type Change } from './transitions.ts'

export type Action = 'remediate' | 'ignored' | 'deferred' | 'cancelled'

/** What the service tells the sender about one alert. */
export type Decision = {
  node: string | null
  alertname: string
  fingerprint: string
  action: Action
  reason: string
  rule?: RuleName
}

/** An alert's effect on its node before fleet-wide rules are applied: `pending` still needs a turn. */
export type AlertOutcome = { kind: 'ignored' | 'cancelled' | 'pending', reason: string, rule?: RuleName }

function sameEpisode (tracked: TrackedAlert | undefined, alert: NodeAlert): boolean {
  return tracked !== undefined && tracked.fingerprint === alert.fingerprint && tracked.startsAt === iso(alert.startsAt)
}

function applyResolved (node: NodeView, alert: NodeAlert, now: number): { change?: Change, outcome: AlertOutcome } {
  const record = node.record
  if (record === undefined || !sameEpisode(record.alert, alert)) {
    return { outcome: { kind: 'ignored', reason: 'resolved: no remediation was driven by this alert' } }
  }
  if (record.alert!.status === 'resolved') return { outcome: { kind: 'ignored', rule: 'validation', reason: 'duplicate: already resolved' } }
  const resolved = { ...record, alert: { ...record.alert!, status: 'resolved' as const } }
  if (record.phase === 'pending' || record.phase === 'cordoned') {
    const reason = `alert ${alert.alertname} resolved before the drain began`
    return { change: cancelPending(resolved, now, reason), outcome: { kind: 'cancelled', reason } }
  }
  return { change: { record: resolved }, outcome: { kind: 'ignored', reason: `resolved; node is already ${record.phase}, which continues` } }
}

/** One alert's effect on one node. Pure: the same inputs always give the same change. */
export function applyAlert (node: NodeView | undefined, alert: NodeAlert, now: number, config: PolicyConfig): { change?: Change, outcome: AlertOutcome } {
  if (alert.status === 'resolved') {
    if (node === undefined) return { outcome: { kind: 'ignored', rule: 'validation', reason: alert.node === undefined ? 'resolved alert without a node label' : `node ${alert.node} is not in the cluster` } }
    return applyResolved(node, alert, now)
  }
  const invalid = validateFiring(alert, node, now, config)
  if (invalid !== undefined) return { outcome: { kind: 'ignored', ...invalid } }
  const record = node!.record ?? emptyRecord(now)
  if (record.phase === 'failed') {
    return { outcome: { kind: 'ignored', reason: `previous remediation failed (${record.outcome}); uncordon the node to release it` } }
  }
  if (activePhases.has(record.phase)) {
    return { outcome: { kind: 'ignored', reason: `node already ${record.phase} for ${record.alert?.alertname}` } }
  }
  const tracked: TrackedAlert = {
    alertname: alert.alertname,
    fingerprint: alert.fingerprint,
    startsAt: iso(alert.startsAt),
    status: 'firing',
    action: config.optInActions[alert.optIn!]!,
    source: alert.source,
    ...(alert.summary === undefined ? {} : { summary: alert.summary })
  }
  const firings = recordFiring(record.firings, alert.startsAt, now, config)
  const reason = `alert ${alert.alertname} firing since ${tracked.startsAt}`
  return {
    change: { record: transition(record, 'pending', now, reason, { alert: tracked, firings, deferred: undefined }) },
    outcome: { kind: 'pending', reason }
  }
}

/** All of one node's alerts from one notification, in order. */
export function applyNodeAlerts (node: NodeView | undefined, alerts: readonly NodeAlert[], now: number, config: PolicyConfig): { change?: Change, outcomes: AlertOutcome[] } {
  let view = node
  let change: Change | undefined
  const outcomes: AlertOutcome[] = []
  for (const alert of alerts) {
    const result = applyAlert(view, alert, now, config)
    outcomes.push(result.outcome)
    if (result.change === undefined) continue
    change = { record: result.change.record, unschedulable: result.change.unschedulable ?? change?.unschedulable }
    if (change.unschedulable === undefined) delete change.unschedulable
    view = { ...view!, record: change.record }
  }
  return change === undefined ? { outcomes } : { change, outcomes }
}

/** Turns per-node outcomes into decisions, asking the fleet-wide rules whether pending nodes start now. */
export function decide (alerts: readonly NodeAlert[], outcomes: readonly AlertOutcome[], snapshot: Snapshot, now: number, config: PolicyConfig, breakers: BreakerMemory): Decision[] {
  const schedule = nextToStart(snapshot, now, config, updateBreakers(breakers, snapshot, now, config))
  return alerts.map((alert, i) => {
    const outcome = outcomes[i]!
    const base = { node: alert.node ?? null, alertname: alert.alertname, fingerprint: alert.fingerprint }
    if (outcome.kind !== 'pending') return { ...base, action: outcome.kind, reason: outcome.reason, ...(outcome.rule ? { rule: outcome.rule } : {}) }
    const block = schedule.blocked.get(alert.node!)
    if (block === undefined) return { ...base, action: 'remediate', reason: `${outcome.reason}; remediation starts now` }
    return { ...base, action: 'deferred', reason: `${outcome.reason}; deferred: ${block.reason}`, rule: block.rule }
  })
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

/**
 * The whole intake decision on an in-memory snapshot: what dry-run reports, what the benchmark
 * measures, and what the property tests drive. The shell does the same per node against the API.
 */
export function triage (webhookAlerts: readonly WebhookAlert[], snapshot: Snapshot, now: number, config: PolicyConfig, breakers: BreakerMemory, source: NodeAlert['source'] = 'alertmanager'): { decisions: Decision[], changes: Map<string, Change>, snapshot: Snapshot } {
  const alerts = webhookAlerts.map(alert => toNodeAlert(alert, config, source))
  const outcomes: AlertOutcome[] = new Array(alerts.length)
  const changes = new Map<string, Change>()
  const next = new Map(snapshot)
  for (const [name, indexes] of groupByNode(alerts)) {
    const node = name === undefined ? undefined : snapshot.get(name)
    const result = applyNodeAlerts(node, indexes.map(i => alerts[i]!), now, config)
    indexes.forEach((alertIndex, j) => { outcomes[alertIndex] = result.outcomes[j]! })
    if (result.change !== undefined && node !== undefined) {
      changes.set(node.name, result.change)
      next.set(node.name, { ...node, record: result.change.record, unschedulable: result.change.unschedulable ?? node.unschedulable })
    }
  }
  return { decisions: decide(alerts, outcomes, next, now, config, breakers), changes, snapshot: next }
}
