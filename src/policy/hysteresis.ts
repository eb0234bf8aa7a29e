import { iso, type NodeRecord } from '../remediation/record.ts'
import type { Block, PolicyConfig } from './config.ts'

/**
 * The Prometheus rule owns the windowed evaluation; on top of it a node must have been firing for
 * a minimum age, and a node whose alert keeps resolving and re-firing is held rather than drained:
 * flapping points at the signal, not the node.
 */

/** The firing starts that still fall inside the flap window, with this one added. */
export function recordFiring (firings: readonly string[], startsAt: number, now: number, config: PolicyConfig): string[] {
  const start = iso(startsAt)
  const recent = firings.filter(at => Date.parse(at) > now - config.flapWindowMs)
  return recent.includes(start) ? recent : [...recent, start].sort()
}

export function hysteresisBlock (record: NodeRecord, now: number, config: PolicyConfig): Block | undefined {
  const alert = record.alert
  if (alert === undefined) return { rule: 'hysteresis', reason: 'no firing alert recorded' }
  const eligibleAt = Date.parse(alert.startsAt) + config.minFiringAgeMs
  if (now < eligibleAt) {
    return { rule: 'hysteresis', reason: `firing since ${alert.startsAt}; minimum firing age reached at ${iso(eligibleAt)}` }
  }
  const refires = record.firings.filter(at => Date.parse(at) > now - config.flapWindowMs).length - 1
  if (refires > config.flapMaxRefires) {
    return { rule: 'hysteresis', reason: `flapping: re-fired ${refires} times within ${config.flapWindowMs / 1000}s; holding the node` }
  }
  return undefined
}
