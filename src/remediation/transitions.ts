import type { PersistedBlock, PolicyConfig } from '../policy/config.ts'
import type { ProviderResult } from '../providers/provider.ts'
import { iso, parseTime } from '../time.ts'
import { transition, type NodeRecord, type RungAction } from './record.ts'
import type { NodeView } from './snapshot.ts'

/**
 * A change to one node: its new record and, when it changes, its schedulability. The shell writes
 * both in one patch, so the record of a step is persisted no later than the step itself.
 */
export type Change = { record: NodeRecord, unschedulable?: boolean }

function recordOf (node: NodeView): NodeRecord {
  if (node.record === undefined) throw new Error(`node ${node.name} has no remediation record`)
  return node.record
}

const describeAction = (action: RungAction) => action === 'quarantine' ? 'quarantine (the ladder is exhausted)' : action

export function startRemediation (node: NodeView, action: RungAction, now: number, config: Pick<PolicyConfig, 'ladderWindowMs'>): Change {
  const record = recordOf(node)
  const at = iso(now)
  return {
    record: transition(record, 'cordoned', now, `cordoned to ${describeAction(action)}`, {
      uid: node.uid,
      remediationId: `${node.name}@${at}`,
      action,
      wasUnschedulable: node.unschedulable,
      bootID: node.bootID,
      startedAt: at,
      deferred: undefined,
      drainDeadline: undefined,
      rebootDeadline: undefined,
      replaceDeadline: undefined,
      verifySince: undefined,
      cooldownUntil: undefined,
      outcome: undefined,
      remediations: [...record.remediations.filter(r => parseTime(r.at) > now - config.ladderWindowMs), { at, action }]
    }),
    unschedulable: true
  }
}

/** Keeps an interrupted drain's deadline: a restart must not extend it. */
export function beginDrain (record: NodeRecord, now: number, config: Pick<PolicyConfig, 'drainTimeoutMs'>): Change {
  const deadline = record.drainDeadline ?? iso(now + config.drainTimeoutMs)
  return { record: transition(record, 'draining', now, `draining until ${deadline} at the latest`, { drainDeadline: deadline }) }
}

/** Drained: the provider acts next, or, at the ladder's end, the node is held for a person. */
export function drainSucceeded (record: NodeRecord, now: number, detail: string): Change {
  if (record.action === 'quarantine') {
    return { record: transition(record, 'quarantined', now, `quarantined: remediated ${record.remediations.length - 1} times within LADDER_WINDOW and still alerting; ${detail}; held cordoned for an operator`, { outcome: 'quarantined' }) }
  }
  return { record: transition(record, 'remediating', now, detail, { outcome: 'drained' }) }
}

/** A failed step leaves the node cordoned and holding its slot until an operator looks at it. */
export function failRemediation (record: NodeRecord, now: number, outcome: string, reason: string): Change {
  return { record: transition(record, 'failed', now, reason, { outcome }) }
}

/**
 * The provider answered. A machine restarted in place is waited for (cordoned) until it is Ready
 * on a new boot; one being replaced elsewhere stays cordoned until the cloud removes the node; a
 * rung the provider did not perform is never counted as a fix.
 */
export function providerDone (record: NodeRecord, now: number, config: Pick<PolicyConfig, 'rebootTimeoutMs' | 'replaceTimeoutMs'>, provider: string, result: ProviderResult): Change {
  const detail = `provider ${provider}: ${result.detail}`
  switch (result.outcome) {
    case 'restarted': {
      const deadline = record.rebootDeadline ?? iso(now + config.rebootTimeoutMs)
      return { record: transition(record, 'rebooting', now, `${detail}; waiting until ${deadline} at the latest for the node to be Ready on a new boot`, { rebootDeadline: deadline }) }
    }
    case 'replacing': {
      const deadline = record.replaceDeadline ?? iso(now + config.replaceTimeoutMs)
      return { record: transition(record, 'replacing', now, `${detail}; held cordoned until the cloud removes the node (by ${deadline})`, { replaceDeadline: deadline }) }
    }
    case 'not-performed':
      return failRemediation(record, now, 'not-performed', `${detail}; nothing was fixed, so the node stays cordoned for an operator`)
  }
}

/** A restarted node is back once it is Ready and its boot differs from the one it was cordoned on. */
export function backFromReboot (node: NodeView): boolean {
  return node.ready && node.bootID !== undefined && node.bootID !== node.record?.bootID
}

/** Back on a new boot: return it to service and start proving the fix. */
export function returnToService (record: NodeRecord, now: number, detail: string): Change {
  return {
    record: transition(record, 'verifying', now, `${detail}; back in service, proving the fix for VERIFY_DWELL`, { verifySince: iso(now), dwellInterruptedAt: undefined }),
    unschedulable: record.wasUnschedulable ?? false
  }
}

/** The node stopped being Ready while its fix was being proven: the dwell waits. Not a transition, so no history entry. */
export function interruptDwell (record: NodeRecord, now: number): Change {
  return { record: { ...record, dwellInterruptedAt: iso(now) } }
}

/** Ready again: the dwell starts over. */
export function resumeDwell (record: NodeRecord, now: number): Change {
  return { record: { ...record, verifySince: iso(now), dwellInterruptedAt: undefined } }
}

/**
 * While we proved the fix, someone else took the node out of service (cordoned it, or a
 * disruptor tainted it). Their choice wins: we stop, our slot is free, the node is theirs.
 */
export function takenOverWhileVerifying (record: NodeRecord, now: number, cause: string, config: Pick<PolicyConfig, 'cooldownMs'>): Change {
  return {
    record: transition(record, 'cancelled', now, `taken out of service by someone else while the fix was being verified (${cause}); stopped`, {
      outcome: 'taken-over',
      cooldownUntil: iso(now + config.cooldownMs)
    })
  }
}

export function dwellEndsAt (record: NodeRecord, config: Pick<PolicyConfig, 'verifyDwellMs'>): number {
  return parseTime(record.verifySince!) + config.verifyDwellMs
}

/** The dwell passed without a re-fire: the fix is proven and the slot freed. */
export function fixProven (record: NodeRecord, now: number, config: Pick<PolicyConfig, 'cooldownMs'>): Change {
  return {
    record: transition(record, 'cooldown', now, 'fix proven: Ready and schedulable for VERIFY_DWELL without a re-fire', {
      outcome: 'remediated',
      provenAt: iso(now),
      cooldownUntil: iso(now + config.cooldownMs)
    })
  }
}

/** The alert re-fired (or never stopped) after the fix: back to pending, for the next rung. */
export function notFixed (record: NodeRecord, now: number, reason: string): Change {
  return { record: transition(record, 'pending', now, reason, { outcome: 'not-fixed', deferred: undefined }) }
}

export function cooldownOver (node: NodeView, now: number): boolean {
  return node.record?.phase === 'cooldown' && parseTime(node.record.cooldownUntil!) <= now
}

export function endCooldown (record: NodeRecord, now: number): Change {
  return { record: transition(record, 'healthy', now, 'cooldown ended') }
}

const operatorReleasable = new Set<NodeRecord['phase']>(['cordoned', 'draining', 'rebooting', 'replacing', 'failed', 'quarantined'])

/** We hold the node cordoned (or left it cordoned after a failure) yet it is schedulable: someone uncordoned it. */
export function uncordonedByOperator (node: NodeView): boolean {
  const phase = node.record?.phase
  return !node.unschedulable && phase !== undefined && operatorReleasable.has(phase)
}

/**
 * Someone made the node schedulable while we held it. Their choice wins: stop, do not re-cordon,
 * and keep new alerts off the node for a cooldown.
 */
export function operatorUncordoned (record: NodeRecord, now: number, config: Pick<PolicyConfig, 'cooldownMs'>): Change {
  return {
    record: transition(record, 'cancelled', now, `node made schedulable by someone else while ${record.phase}; stopped`, {
      outcome: 'operator-uncordoned',
      cooldownUntil: iso(now + config.cooldownMs)
    })
  }
}

/** A pending node whose alerts no longer count is let go, and its prior schedulability restored. */
export function cancelPending (record: NodeRecord, now: number, reason: string): Change {
  const change: Change = { record: transition(record, 'cancelled', now, reason, { outcome: 'cancelled', deferred: undefined }) }
  if (record.phase === 'cordoned') change.unschedulable = record.wasUnschedulable ?? false
  return change
}

const sameBlock = (a: PersistedBlock | undefined, b: PersistedBlock) => a?.rule === b.rule && a.reason === b.reason && a.scope === b.scope

/** Records which rule holds a pending node back; not a transition, so no history entry. Stable text: no write when unchanged. */
export function deferPending (record: NodeRecord, block: PersistedBlock): Change | undefined {
  return sameBlock(record.deferred, block) ? undefined : { record: { ...record, deferred: block } }
}
