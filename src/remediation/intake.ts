import { toNodeAlert, type NodeAlert } from '../alerts/node-alert.ts'
import type { WebhookAlert } from '../alerts/webhook.ts'
import { updateBreakers, type BreakerMemory } from '../policy/circuit-breaker.ts'
import type { PolicyConfig, RuleName } from '../policy/config.ts'
import { recordFiring } from '../policy/hysteresis.ts'
import { validateFiring } from '../policy/validation.ts'
import { iso } from '../time.ts'
import { activePhases, emptyRecord, transition, type TrackedAlert } from './record.ts'
import { nextToStart } from './schedule.ts'
import { overlay, type NodeView, type Snapshot } from './snapshot.ts'
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
  return tracked !== undefined && tracked.fingerprint === alert.fingerprint && tracked.startsAt === alert.startsAtIso
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
    startsAt: alert.startsAtIso,
    status: 'firing',
    action: config.optInActions[alert.optIn!]!,
    source: alert.source,
    ...(alert.summary === undefined ? {} : { summary: alert.summary })
  }
  const firings = recordFiring(record.firings, alert.startsAtIso, now, config)
  const reason = `alert ${alert.alertname} firing since ${tracked.startsAt}`
  return {
    change: { record: transition(record, 'pending', now, reason, { alert: tracked, firings, deferred: undefined }) },
    outcome: { kind: 'pending', reason }
  }
}

/** A later change to the same node keeps an earlier one's schedulability unless it sets its own. */
function combine (earlier: Change | undefined, later: Change): Change {
  const unschedulable = later.unschedulable ?? earlier?.unschedulable
  return unschedulable === undefined ? { record: later.record } : { record: later.record, unschedulable }
}

/** All of one node's alerts from one notification, in order. */
export function applyNodeAlerts (node: NodeView | undefined, alerts: readonly NodeAlert[], now: number, config: PolicyConfig): { change?: Change, outcomes: AlertOutcome[] } {
  let view = node
  let change: Change | undefined
  const outcomes = alerts.map(alert => {
    const result = applyAlert(view, alert, now, config)
    if (result.change !== undefined) {
      change = combine(change, result.change)
      view = { ...view!, record: change.record }
    }
    return result.outcome
  })
  return change === undefined ? { outcomes } : { change, outcomes }
}

/** Turns per-node outcomes into decisions, asking the fleet-wide rules whether pending nodes start now. */
export function decide (alerts: readonly NodeAlert[], outcomes: readonly AlertOutcome[], snapshot: Snapshot, now: number, config: PolicyConfig, breakers: BreakerMemory): Decision[] {
  // Only pending nodes need the fleet-wide rules; a repeat notification skips them.
  const schedule = outcomes.some(o => o.kind === 'pending')
    ? nextToStart(snapshot, now, config, updateBreakers(breakers, snapshot, now, config))
    : { start: [], blocked: new Map() }
  return alerts.map((alert, i) => {
    const outcome = outcomes[i]!
    const node = alert.node ?? null
    if (outcome.kind !== 'pending') {
      const decision: Decision = { node, alertname: alert.alertname, fingerprint: alert.fingerprint, action: outcome.kind, reason: outcome.reason }
      if (outcome.rule !== undefined) decision.rule = outcome.rule
      return decision
    }
    const block = schedule.blocked.get(alert.node!)
    if (block === undefined) return { node, alertname: alert.alertname, fingerprint: alert.fingerprint, action: 'remediate', reason: `${outcome.reason}; remediation starts now` }
    return { node, alertname: alert.alertname, fingerprint: alert.fingerprint, action: 'deferred', reason: `${outcome.reason}; deferred: ${block.reason}`, rule: block.rule }
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
  const changes = new Map<string, Change>()
  const changed = new Map<string, NodeView>()
  // In order, each alert seeing the effect of the ones before it: what applyNodeAlerts does per node.
  const outcomes = alerts.map(alert => {
    const node = alert.node === undefined ? undefined : changed.get(alert.node) ?? snapshot.get(alert.node)
    const { change, outcome } = applyAlert(node, alert, now, config)
    if (change !== undefined && node !== undefined) {
      const combined = combine(changes.get(node.name), change)
      changes.set(node.name, combined)
      changed.set(node.name, { ...node, record: combined.record, unschedulable: change.unschedulable ?? node.unschedulable })
    }
    return outcome
  })
  const next = overlay(snapshot, changed)
  return { decisions: decide(alerts, outcomes, next, now, config, breakers), changes, snapshot: next }
}
