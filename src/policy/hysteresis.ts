import type { NodeRecord } from '../remediation/record.ts'
import { iso, parseTime } from '../time.ts'
import type { Block, PolicyConfig } from './config.ts'

/**
 * The Prometheus rule owns the windowed evaluation; on top of it a node must have been firing for
 * a minimum age, and a node whose alert keeps resolving and re-firing is held rather than drained:
 * flapping points at the signal, not the node.
 */

/** The firing starts that still fall inside the flap window, with this one added. */
export function recordFiring (firings: readonly string[], start: string, now: number, config: PolicyConfig): string[] {
  if (firings.length === 0) return [start]
  const recent = firings.filter(at => parseTime(at) > now - config.flapWindowMs)
  return recent.includes(start) ? recent : [...recent, start].sort()
}

export function hysteresisBlock (record: NodeRecord, now: number, config: PolicyConfig): Block | undefined {
  const alert = record.alert
  if (alert === undefined) return { rule: 'hysteresis', reason: 'no firing alert recorded' }
  const eligibleAt = parseTime(alert.startsAt) + config.minFiringAgeMs
  if (now < eligibleAt) {
    return { rule: 'hysteresis', reason: `firing since ${alert.startsAt}; minimum firing age reached at ${iso(eligibleAt)}` }
  }
  // Counting needs the clock only when there are more starts than re-fires allowed.
  const refires = record.firings.length <= config.flapMaxRefires + 1
    ? 0
    : record.firings.filter(at => parseTime(at) > now - config.flapWindowMs).length - 1
  if (refires > config.flapMaxRefires) {
    return { rule: 'hysteresis', reason: `flapping: re-fired ${refires} times within ${config.flapWindowMs / 1000}s; holding the node` }
  }
  return undefined
}
