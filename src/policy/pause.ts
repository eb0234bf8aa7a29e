import type { Pause } from '../remediation/fleet-state.ts'
import { iso, parseTime } from '../time.ts'
import type { Block } from './config.ts'
import { describeWindows, isOpen, nextOpening, type Windows } from './window.ts'

/**
 * The operator's brakes: a pause (cluster-wide or per pool, with a reason and an optional expiry)
 * and maintenance windows (REMEDIATION_WINDOWS). Both stop new starts only: work under way goes on
 * to its next safe point.
 */

export function pauseActive (pause: Pause | undefined, now: number): boolean {
  return pause !== undefined && (pause.until === undefined || parseTime(pause.until) > now)
}

export function pauseBlock (pauses: ReadonlyMap<string, Pause>, pool: string, now: number): Block | undefined {
  // Keys as stored (`pool/NAME`); scopes as every other rule names them (`pool=NAME`).
  for (const [key, scope, where] of [['cluster', 'cluster', 'cluster-wide'], [`pool/${pool}`, `pool=${pool}`, `for pool ${pool}`]] as const) {
    const pause = pauses.get(key)
    if (!pauseActive(pause, now)) continue
    const at = pause!.at === '' ? '' : ` at ${pause!.at}`
    const until = pause!.until === undefined ? '' : ` until ${pause!.until}`
    return { rule: 'paused', scope, reason: `paused ${where} by ${pause!.by}${at}${until}: ${pause!.reason}`, ...(pause!.until === undefined ? {} : { until: parseTime(pause!.until) }) }
  }
  return undefined
}

/** Pauses whose expiry has passed: they end by themselves. */
export function expiredPauses (pauses: ReadonlyMap<string, Pause>, now: number): string[] {
  return [...pauses].filter(([, pause]) => !pauseActive(pause, now)).map(([key]) => key)
}

export function windowBlock (windows: Windows, now: number): Block | undefined {
  if (windows.length === 0 || isOpen(windows, now)) return undefined
  const next = nextOpening(windows, now)
  return {
    rule: 'window',
    reason: `outside the maintenance windows (REMEDIATION_WINDOWS ${describeWindows(windows)}); next opening ${next === undefined ? 'unknown' : iso(next)}`,
    ...(next === undefined ? {} : { until: next, detail: { nextOpening: iso(next) } })
  }
}
