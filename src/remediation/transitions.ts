import type { Block, PolicyConfig } from '../policy/config.ts'
import { iso } from '../time.ts'
import { transition, type NodeRecord } from './record.ts'
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

export function startRemediation (node: NodeView, now: number): Change {
  const record = recordOf(node)
  const alertname = record.alert?.alertname ?? 'alert'
  return {
    record: transition(record, 'cordoned', now, `cordoned for ${alertname}`, {
      remediationId: `${node.name}@${iso(now)}`,
      wasUnschedulable: node.unschedulable,
      providerID: node.providerID,
      bootID: node.bootID,
      startedAt: iso(now),
      deferred: undefined,
      drainDeadline: undefined,
      rebootDeadline: undefined,
      cooldownUntil: undefined,
      outcome: undefined
    }),
    unschedulable: true
  }
}

/** Keeps an interrupted drain's deadline: a restart must not extend it. */
export function beginDrain (record: NodeRecord, now: number, config: PolicyConfig): Change {
  const deadline = record.drainDeadline ?? iso(now + config.drainTimeoutMs)
  return { record: transition(record, 'draining', now, `draining until ${deadline} at the latest`, { drainDeadline: deadline }) }
}

export function drainSucceeded (record: NodeRecord, now: number, detail: string): Change {
  return { record: transition(record, 'remediating', now, detail, { outcome: 'drained' }) }
}

/** A failed step leaves the node cordoned and holding its slot until an operator looks at it. */
export function failRemediation (record: NodeRecord, now: number, outcome: string, reason: string): Change {
  return { record: transition(record, 'failed', now, reason, { outcome }) }
}

/**
 * The provider is done. The node returns to service when its machine was rebooted or replaced in
 * place (new providerID); a node whose machine is being replaced elsewhere stays cordoned until
 * the cloud removes it.
 */
export function remediationSucceeded (node: NodeView, now: number, config: PolicyConfig, detail: string): Change {
  const record = recordOf(node)
  const sameMachineReplaced = record.alert?.action === 'replace' && node.providerID === record.providerID
  const change: Change = {
    record: transition(record, 'cooldown', now, detail, { outcome: 'remediated', cooldownUntil: iso(now + config.cooldownMs) })
  }
  if (!sameMachineReplaced) change.unschedulable = record.wasUnschedulable ?? false
  return change
}

/**
 * The provider restarted the machine in place. The node stays cordoned until the kubelet reports
 * Ready on a new boot: uncordoning at once would let the scheduler place pods on a machine about
 * to go down. Keeps an interrupted wait's deadline: a restart must not extend it.
 */
export function machineRebooting (record: NodeRecord, now: number, config: PolicyConfig, detail: string): Change {
  const deadline = record.rebootDeadline ?? iso(now + config.rebootTimeoutMs)
  return { record: transition(record, 'rebooting', now, `${detail}; waiting until ${deadline} at the latest for the node to be Ready on a new boot`, { rebootDeadline: deadline }) }
}

/** A rebooted node is back once it is Ready and its boot differs from the one it was cordoned on. */
export function backFromReboot (node: NodeView): boolean {
  return node.ready && node.bootID !== undefined && node.bootID !== node.record?.bootID
}

export function cooldownOver (node: NodeView, now: number): boolean {
  return node.record?.phase === 'cooldown' && Date.parse(node.record.cooldownUntil!) <= now
}

export function endCooldown (record: NodeRecord, now: number): Change {
  return { record: transition(record, 'healthy', now, 'cooldown ended') }
}

/** We hold the node cordoned (or left it cordoned after a failure) yet it is schedulable: someone uncordoned it. */
export function uncordonedByOperator (node: NodeView): boolean {
  const phase = node.record?.phase
  return !node.unschedulable && (phase === 'cordoned' || phase === 'draining' || phase === 'rebooting' || phase === 'failed')
}

/**
 * Someone made the node schedulable while we held it. Their choice wins: stop, do not re-cordon,
 * and keep new alerts off the node for a cooldown.
 */
export function operatorUncordoned (record: NodeRecord, now: number, config: PolicyConfig): Change {
  return {
    record: transition(record, 'cancelled', now, `node made schedulable by someone else while ${record.phase}; stopped`, {
      outcome: 'operator-uncordoned',
      cooldownUntil: iso(now + config.cooldownMs)
    })
  }
}

/** A pending node whose alert is no longer firing is let go, and its prior schedulability restored. */
export function cancelPending (record: NodeRecord, now: number, reason: string): Change {
  const change: Change = { record: transition(record, 'cancelled', now, reason, { outcome: 'cancelled', deferred: undefined }) }
  if (record.phase === 'cordoned') change.unschedulable = record.wasUnschedulable ?? false
  return change
}

/** Records which rule holds a pending node back; not a transition, so no history entry. */
export function deferPending (record: NodeRecord, block: Block): Change | undefined {
  const same = record.deferred?.rule === block.rule && record.deferred.reason === block.reason
  return same ? undefined : { record: { ...record, deferred: block } }
}
