import type { Block } from '../policy/config.ts'
import type { ProviderAction } from '../providers/provider.ts'
import { iso } from '../time.ts'

/**
 * The remediation state of one node, persisted as JSON in one annotation on the Node so that the
 * API server is the source of truth: a restarted or newly elected controller rebuilds from it.
 */
export const phases = ['pending', 'cordoned', 'draining', 'remediating', 'rebooting', 'cooldown', 'healthy', 'failed', 'cancelled'] as const
export type Phase = typeof phases[number]

/** Phases in which the node is out of service because of us: they hold a drain-semaphore slot. */
export const holdingPhases: ReadonlySet<Phase> = new Set(['cordoned', 'draining', 'remediating', 'rebooting', 'failed'])
/** Phases in which a remediation is under way or waiting; a new alert does not start another. */
export const activePhases: ReadonlySet<Phase> = new Set(['pending', 'cordoned', 'draining', 'remediating', 'rebooting'])

export type TrackedAlert = {
  alertname: string
  fingerprint: string
  /** ISO time; with the fingerprint it identifies one firing episode. */
  startsAt: string
  status: 'firing' | 'resolved'
  action: ProviderAction
  summary?: string
  /** Where it came from: an Alertmanager notification or an operator's injected fault. */
  source: 'alertmanager' | 'fault'
}

export type Transition = { from: Phase, to: Phase, at: string, reason: string }

export type NodeRecord = {
  phase: Phase
  since: string
  reason: string
  /** The alert that drives (or last drove) this node's remediation. */
  alert?: TrackedAlert
  /** Distinct firing starts seen within the flap window: more than one means the alert re-fired. */
  firings: string[]
  /** While pending: the safety rule currently holding it back. */
  deferred?: Block
  /** Identifies one remediation attempt; providers use it to stay idempotent. */
  remediationId?: string
  /** Schedulability before we cordoned, restored when we let go. */
  wasUnschedulable?: boolean
  /** The machine when the drain began; a different one afterwards means it was replaced in place. */
  providerID?: string
  /** The node's boot when it was cordoned; a rebooted machine is back only on another one. */
  bootID?: string
  startedAt?: string
  drainDeadline?: string
  /** While rebooting: when the node must be back Ready on a new boot, or the remediation fails. */
  rebootDeadline?: string
  cooldownUntil?: string
  outcome?: string
  history: Transition[]
}

const historyLimit = 20

export function emptyRecord (now: number): NodeRecord {
  return { phase: 'healthy', since: iso(now), reason: 'no remediation yet', firings: [], history: [] }
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

/**
 * Reads a persisted record. Anything unreadable is reported rather than guessed at: the caller
 * treats the node as untouchable until an operator fixes the annotation (fail-open).
 */
export function decodeRecord (text: string | undefined): { record?: NodeRecord, error?: string } {
  if (text === undefined) return {}
  try {
    const value = JSON.parse(text) as Partial<NodeRecord>
    if (typeof value !== 'object' || value === null || !phases.includes(value.phase as Phase) ||
        typeof value.since !== 'string' || !Array.isArray(value.history) || !Array.isArray(value.firings)) {
      return { error: 'state annotation is not a remediation record' }
    }
    return { record: value as NodeRecord }
  } catch (err) {
    return { error: `state annotation is not JSON: ${(err as Error).message}` }
  }
}
