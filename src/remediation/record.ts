import type { PersistedBlock } from '../policy/config.ts'
import type { ProviderAction } from '../providers/provider.ts'
import { iso } from '../time.ts'

/**
 * The remediation state of one node, persisted as JSON in one annotation on the Node so that the
 * API server is the source of truth: a restarted or newly elected controller rebuilds from it.
 */
export const phases = [
  'pending', 'cordoned', 'draining', 'remediating', 'rebooting', 'replacing', 'verifying',
  'cooldown', 'healthy', 'failed', 'quarantined', 'cancelled'
] as const
export type Phase = typeof phases[number]

/**
 * Phases in which the node holds one of our slots (MAX_CONCURRENT_DRAINS): it is out of service
 * because of us, or back in service but its fix not yet proven (verifying). A slot is freed only
 * by a proven fix, by an operator taking the node back, or by the node leaving the cluster (then
 * the departed entry holds it until the pool is whole again).
 */
export const holdingPhases: ReadonlySet<Phase> = new Set(['cordoned', 'draining', 'remediating', 'rebooting', 'replacing', 'verifying', 'failed', 'quarantined'])
/** Phases whose work is under way; a new alert is recorded but starts nothing. */
export const workingPhases: ReadonlySet<Phase> = new Set(['cordoned', 'draining', 'remediating', 'rebooting', 'replacing'])
/** Phases the operator must end (by uncordoning): new alerts are recorded, nothing starts. */
export const stuckPhases: ReadonlySet<Phase> = new Set(['failed', 'quarantined'])

/** What an alert asks for: `ladder` is remediation="drain", the escalation ladder decides the rung. */
export type RequestedAction = 'ladder' | ProviderAction
/** What one remediation does after the drain. `quarantine` is the ladder's end: drained and held. */
export type RungAction = ProviderAction | 'quarantine'

export type AlertStatus = 'firing' | 'resolved' | 'silenced' | 'expired'

export type TrackedAlert = {
  alertname: string
  fingerprint: string
  /** ISO time; with the fingerprint it identifies one firing episode. */
  startsAt: string
  status: AlertStatus
  action: RequestedAction
  summary?: string
  /** Where it came from: an Alertmanager notification or an operator's injected fault. */
  source: 'alertmanager' | 'fault'
  /** When we first recorded this episode. */
  receivedAt: string
  /** When it last began to count again after it had stopped (expired, silenced): a revived storm settles anew. */
  revivedAt?: string
  /** When a notification last carried it firing (refreshed coarsely); ALERT_TTL runs from here. */
  lastSeen: string
  /** When it stopped counting (resolved, silenced, expired). */
  endedAt?: string
  /** An injected fault ends by itself at this time. */
  endsAt?: string
}

export type Transition = { from: Phase, to: Phase, at: string, reason: string }

export type NodeRecord = {
  /** The Node object (metadata.uid) this record belongs to; a record of another object is history. */
  uid?: string
  phase: Phase
  since: string
  reason: string
  /** Every episode of every alert seen for this node recently, firing or not, newest last. */
  alerts: TrackedAlert[]
  /** Distinct firing starts seen within the flap window: more than one means the alert re-fired. */
  firings: string[]
  /** While pending: the safety rule currently holding it back, in words that do not change per pass. */
  deferred?: PersistedBlock
  /** Identifies one remediation attempt; providers use it to stay idempotent. */
  remediationId?: string
  /** What this remediation does after the drain, fixed when it starts. */
  action?: RungAction
  /** Schedulability before we cordoned, restored when we let go. */
  wasUnschedulable?: boolean
  /** The node's boot when it was cordoned; a rebooted machine is back only on another one. */
  bootID?: string
  startedAt?: string
  drainDeadline?: string
  /** While rebooting: when the node must be back Ready on a new boot, or the remediation fails. */
  rebootDeadline?: string
  /** While replacing: when the cloud must have removed the node, or the remediation fails. */
  replaceDeadline?: string
  /** While verifying: since when the node has been continuously Ready and schedulable. */
  verifySince?: string
  /** While verifying: since when the node has not been Ready (the dwell waits; too long is not fixed). */
  dwellInterruptedAt?: string
  /** When the last fix was proven (the dwell passed without a re-fire). */
  provenAt?: string
  cooldownUntil?: string
  outcome?: string
  /** Starts of the remediations within the ladder window: the next rung is their count. */
  remediations: Array<{ at: string, action: RungAction }>
  history: Transition[]
}

const historyLimit = 20

export function emptyRecord (now: number, uid?: string): NodeRecord {
  return { ...(uid === undefined ? {} : { uid }), phase: 'healthy', since: iso(now), reason: 'no remediation yet', alerts: [], firings: [], remediations: [], history: [] }
}

/** A new record in phase `to`, with the transition appended to its bounded history. */
export function transition (record: NodeRecord, to: Phase, now: number, reason: string, changes: Partial<NodeRecord> = {}): NodeRecord {
  const at = iso(now)
  const entry = { from: record.phase, to, at, reason }
  const history = record.history.length < historyLimit ? [...record.history, entry] : [...record.history.slice(1 - historyLimit), entry]
  return { ...record, ...changes, phase: to, since: at, reason, history }
}

export function encodeRecord (record: NodeRecord): string {
  return JSON.stringify(record)
}

/** A record written by the first release (one `alert`, no uid): read as one tracked episode. */
type FirstRelease = Partial<NodeRecord> & { alert?: Omit<TrackedAlert, 'receivedAt' | 'lastSeen' | 'action'> & { action: string } }

function upgrade (value: FirstRelease): NodeRecord {
  const { alert, ...rest } = value
  const alerts: TrackedAlert[] = value.alerts ?? (alert === undefined
    ? []
    : [{ ...alert, action: alert.action === 'replace' || alert.action === 'reboot' || alert.action === 'none' ? alert.action : 'ladder', receivedAt: value.since!, lastSeen: value.since! }])
  return { ...rest, alerts, remediations: value.remediations ?? [] } as NodeRecord
}

/**
 * Reads a persisted record. Anything unreadable is reported rather than guessed at: the caller
 * treats the node as untouchable until an operator fixes the annotation (fail-open).
 */
export function decodeRecord (text: string | undefined): { record?: NodeRecord, error?: string } {
  if (text === undefined) return {}
  try {
    const value = JSON.parse(text) as FirstRelease & { alerts?: TrackedAlert[] }
    if (typeof value !== 'object' || value === null || !phases.includes(value.phase as Phase) ||
        typeof value.since !== 'string' || !Array.isArray(value.history) || !Array.isArray(value.firings) ||
        (value.alerts !== undefined && !Array.isArray(value.alerts))) {
      return { error: 'state annotation is not a remediation record' }
    }
    return { record: upgrade(value) }
  } catch (err) {
    return { error: `state annotation is not JSON: ${(err as Error).message}` }
  }
}
