import type { BreakerMemory } from '../policy/circuit-breaker.ts'

/**
 * What the controller remembers about the fleet as a whole, as opposed to one node: persisted in
 * the cluster (annotations on the controller's own Lease; in memory on the simulated cluster) so
 * that every replica and every restart sees the same.
 */

/**
 * A node we held that left the cluster (its machine replaced elsewhere, or deleted while we held
 * it). Its record left with it, so its slot and its place in the pool's budget are kept here until
 * the pool is back at its size with Ready, schedulable nodes for VERIFY_DWELL.
 */
export type DepartedEntry = {
  node: string
  uid: string
  pool: string
  zone: string
  remediationId?: string
  goneAt: string
  /** The pool's size (present nodes, this one included) when it left: what "back at its size" means. */
  expected: number
  /** Since when the pool has been back at its size with every newcomer Ready and schedulable. */
  backSince?: string
  /** REPLACE_TIMEOUT passed without the pool being whole again: held for an operator. */
  failed?: string
  deadline: string
}

/** An operator's pause: no new remediation starts in its scope until it is lifted or expires. */
export type Pause = { reason: string, by: string, at: string, until?: string }

/** Pause keys: `cluster`, or `pool/NAME`. */
export const pauseKey = (pool?: string) => pool === undefined ? 'cluster' : `pool/${pool}`

/** A notification Alertmanager truncated (max_alerts): its pools are in doubt until the picture is complete. */
export type Doubt = { groupKey: string, pools: string[], since: string, hidden: number, /** the last truncated notification of the group (refreshed coarsely) */ lastSeen?: string }

export type FleetState = {
  /** Optimistic concurrency token of the stored document. */
  version: string
  departed: ReadonlyMap<string, DepartedEntry>
  breakers: ReadonlyMap<string, BreakerMemory>
  doubts: ReadonlyMap<string, Doubt>
  pauses: ReadonlyMap<string, Pause>
}

export const emptyFleetState: FleetState = { version: '', departed: new Map(), breakers: new Map(), doubts: new Map(), pauses: new Map() }

const sections = ['departed', 'breakers', 'doubts', 'pauses'] as const
type Section = typeof sections[number]

/** The annotations holding the fleet state, one JSON object per section. */
export function fleetStateKeys (prefix: string): Record<Section, string> {
  return { departed: `${prefix}/departed`, breakers: `${prefix}/breakers`, doubts: `${prefix}/doubts`, pauses: `${prefix}/pauses` }
}

function readSection<T> (text: string | undefined): Map<string, T> {
  if (text === undefined || text === '') return new Map()
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? new Map(Object.entries(value as Record<string, T>)) : new Map()
  } catch {
    return new Map()
  }
}

/**
 * Pauses as stored, or as an operator wrote them with `kubectl annotate`. Doubt means paused: an
 * annotation that cannot be read, or a key that names no scope, pauses the whole cluster; a
 * missing field is filled in, an expiry that is no time is no expiry.
 */
export function decodePauses (text: string | undefined): Map<string, Pause> {
  if (text === undefined || text === '') return new Map()
  const unreadable = (why: string): Map<string, Pause> => new Map([['cluster', { reason: `the pause annotation is unreadable (${why}); fix or remove it`, by: 'unknown', at: '' }]])
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return unreadable('not JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return unreadable('not a JSON object')
  const pauses = new Map<string, Pause>()
  for (const [key, raw] of Object.entries(value)) {
    const entry = (typeof raw === 'object' && raw !== null ? raw : {}) as Partial<Record<keyof Pause, unknown>>
    const until = typeof entry.until === 'string' && Number.isFinite(Date.parse(entry.until)) ? entry.until : undefined
    const pause: Pause = {
      reason: typeof entry.reason === 'string' && entry.reason !== '' ? entry.reason : 'no reason given',
      by: typeof entry.by === 'string' && entry.by !== '' ? entry.by : 'unknown',
      at: typeof entry.at === 'string' ? entry.at : '',
      ...(until === undefined ? {} : { until })
    }
    if (key === 'cluster' || (key.startsWith('pool/') && key.length > 'pool/'.length)) pauses.set(key, pause)
    else pauses.set('cluster', { ...pause, reason: `${pause.reason} (under the key "${key}", which names no scope: use "cluster" or "pool/NAME")` })
  }
  return pauses
}

export function decodeFleetState (annotations: Readonly<Record<string, string>>, version: string, prefix: string): FleetState {
  const keys = fleetStateKeys(prefix)
  return {
    version,
    departed: readSection<DepartedEntry>(annotations[keys.departed]),
    breakers: readSection<BreakerMemory>(annotations[keys.breakers]),
    doubts: readSection<Doubt>(annotations[keys.doubts]),
    pauses: decodePauses(annotations[keys.pauses])
  }
}

/** The annotation changes that turn `before` into `after` (null removes an emptied section). */
export function fleetStatePatch (before: FleetState, after: FleetState, prefix: string): Record<string, string | null> {
  const keys = fleetStateKeys(prefix)
  const patch: Record<string, string | null> = {}
  for (const section of sections) {
    if (before[section] === after[section]) continue
    const value = after[section] as ReadonlyMap<string, unknown>
    patch[keys[section]] = value.size === 0 ? null : JSON.stringify(Object.fromEntries(value))
  }
  return patch
}
