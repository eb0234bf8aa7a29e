import type { NodeRecord, RequestedAction, TrackedAlert } from '../remediation/record.ts'
import { parseTime } from '../time.ts'
import type { PolicyConfig } from './config.ts'

/**
 * Whether an alert still counts. Alertmanager sends no resolve for an alert that becomes silenced
 * or inhibited, a 4xx answer or a restart loses one, and injected faults never resolve: so a
 * firing alert counts only while Alertmanager keeps repeating it. One not repeated within
 * ALERT_TTL is stale and counts for nothing (breaker, budget, starts), exactly as if resolved.
 */

/** When a tracked episode stops (or stopped) counting, or undefined if it never counted. */
export function endOf (alert: TrackedAlert, config: Pick<PolicyConfig, 'alertTtlMs'>): number | undefined {
  if (alert.status !== 'firing') return alert.endedAt === undefined ? undefined : parseTime(alert.endedAt)
  const stale = parseTime(alert.lastSeen) + config.alertTtlMs
  return alert.endsAt === undefined ? stale : Math.min(stale, parseTime(alert.endsAt))
}

export function isLive (alert: TrackedAlert, now: number, config: Pick<PolicyConfig, 'alertTtlMs'>): boolean {
  return alert.status === 'firing' && endOf(alert, config)! > now
}

export function liveAlerts (record: NodeRecord | undefined, now: number, config: Pick<PolicyConfig, 'alertTtlMs'>): TrackedAlert[] {
  return record === undefined ? [] : record.alerts.filter(alert => isLive(alert, now, config))
}

/** Alerting now, or stopped alerting less than `withinMs` ago: what the breaker counts. */
export function alertedWithin (record: NodeRecord | undefined, now: number, withinMs: number, config: Pick<PolicyConfig, 'alertTtlMs'>): boolean {
  if (record === undefined) return false
  for (const alert of record.alerts) {
    const end = endOf(alert, config)
    if (end !== undefined && end > now - withinMs) return true
  }
  return false
}

/** Why a firing episode no longer counts, in words for the operator. */
export function whyEnded (alert: TrackedAlert, now: number, config: Pick<PolicyConfig, 'alertTtlMs'>): string {
  if (alert.status === 'silenced') return `${alert.alertname} is silenced or inhibited in Alertmanager`
  if (alert.status === 'resolved') return `${alert.alertname} resolved`
  if (alert.endsAt !== undefined && parseTime(alert.endsAt) <= now) return `${alert.alertname} ended at ${alert.endsAt}`
  return `${alert.alertname} not repeated by Alertmanager within ALERT_TTL (last seen ${alert.lastSeen}): stale`
}

const strength: Record<RequestedAction, number> = { none: 0, reboot: 1, ladder: 2, replace: 3 }

/** Of several live alerts, the one whose action is strongest (replace over reboot) drives the node. */
export function drivingAlert (alerts: readonly TrackedAlert[]): TrackedAlert | undefined {
  let best: TrackedAlert | undefined
  for (const alert of alerts) if (best === undefined || strength[alert.action] > strength[best.action]) best = alert
  return best
}

/** The earliest time a live alert of the record stops counting by itself: the engine wakes up then. */
export function nextExpiry (record: NodeRecord | undefined, now: number, config: Pick<PolicyConfig, 'alertTtlMs'>): number | undefined {
  let next: number | undefined
  for (const alert of liveAlerts(record, now, config)) {
    const end = endOf(alert, config)!
    if (next === undefined || end < next) next = end
  }
  return next
}
