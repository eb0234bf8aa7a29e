import type { NodeRecord, TrackedAlert } from '../remediation/record.ts'
import { iso, parseTime } from '../time.ts'
import type { Block, PolicyConfig } from './config.ts'

/**
 * The Prometheus rule owns the windowed evaluation; on top of it a node must have been firing for
 * a minimum age, and a node whose alerts keep resolving and re-firing is held rather than drained:
 * flapping points at the signal, not the node.
 */

/** The firing starts that still fall inside the flap window, with this one added. */
export function recordFiring (firings: readonly string[], start: string, now: number, config: PolicyConfig): string[] {
  if (firings.length === 0) return [start]
  const recent = firings.filter(at => parseTime(at) > now - config.flapWindowMs)
  return recent.includes(start) ? recent : [...recent, start].sort()
}

/** `live` are the node's alerts that count now; the oldest of them says how long it has been firing. */
export function hysteresisBlock (record: NodeRecord, live: readonly TrackedAlert[], now: number, config: PolicyConfig): Block | undefined {
  if (live.length === 0) return { rule: 'hysteresis', reason: 'no firing alert recorded' }
  const firingSince = Math.min(...live.map(alert => parseTime(alert.startsAt)))
  const eligibleAt = firingSince + config.minFiringAgeMs
  if (now < eligibleAt) {
    return { rule: 'hysteresis', reason: `firing since ${iso(firingSince)}; minimum firing age reached at ${iso(eligibleAt)}`, until: eligibleAt }
  }
  // Counting needs the clock only when there are more starts than re-fires allowed.
  if (record.firings.length <= config.flapMaxRefires + 1) return undefined
  const recent = record.firings.filter(at => parseTime(at) > now - config.flapWindowMs)
  if (recent.length - 1 <= config.flapMaxRefires) return undefined
  const oldest = parseTime(recent[0]!)
  return {
    rule: 'hysteresis',
    reason: `flapping: re-fired more than ${config.flapMaxRefires} times within ${config.flapWindowMs / 1000}s; holding the node`,
    detail: { refires: recent.length - 1 },
    until: oldest + config.flapWindowMs
  }
}
