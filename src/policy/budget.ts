import { holdingPhases } from '../remediation/record.ts'
import type { NodeView } from '../remediation/snapshot.ts'
import type { Block, PolicyConfig } from './config.ts'

/**
 * The disruption budget, measured on the fleet's truth rather than on our own records.
 *
 * A node is out of service when it is unschedulable (cordoned by us or anyone), not Ready, being
 * deleted, or tainted by a known disruptor. Two limits follow:
 * - our slots: nodes we hold (out of service because of us, or back but not yet proven fixed,
 *   or departed after a replacement and not yet replaced) never exceed MAX_CONCURRENT_DRAINS;
 * - the pool's budget: no remediation starts in a pool, or in a zone of it, when the nodes out of
 *   service there, whoever caused it, would exceed POOL_MAX_UNAVAILABLE.
 */

/** A taint another controller puts on nodes it is taking away. */
export type DisruptorTaint = { key: string, match: 'exact' | 'prefix', by: string }

/** The disruptors we know (../shared/reference/safety.md); DISRUPTION_TAINTS adds more. */
export const knownDisruptorTaints: readonly DisruptorTaint[] = [
  { key: 'karpenter.sh/disrupted', match: 'exact', by: 'Karpenter' },
  { key: 'ToBeDeletedByClusterAutoscaler', match: 'exact', by: 'cluster-autoscaler' },
  { key: 'node.kubernetes.io/out-of-service', match: 'exact', by: 'non-graceful node shutdown' },
  { key: 'node.cloudprovider.kubernetes.io/shutdown', match: 'exact', by: 'the cloud node lifecycle controller' },
  { key: 'aws-node-termination-handler/', match: 'prefix', by: 'AWS Node Termination Handler' },
  { key: 'node.kubernetes.io/unschedulable', match: 'exact', by: 'a cordon' }
]

/** `KEY` or `PREFIX*` entries of DISRUPTION_TAINTS. */
export function parseDisruptorTaint (text: string): DisruptorTaint {
  return text.endsWith('*') ? { key: text.slice(0, -1), match: 'prefix', by: 'DISRUPTION_TAINTS' } : { key: text, match: 'exact', by: 'DISRUPTION_TAINTS' }
}

function disruptorOf (key: string, taints: readonly DisruptorTaint[]): DisruptorTaint | undefined {
  return taints.find(t => t.match === 'exact' ? t.key === key : key.startsWith(t.key))
}

/** Why the node is out of service, or undefined when it serves. The first cause found names it. */
export function outOfServiceCause (node: NodeView, config: Pick<PolicyConfig, 'disruptorTaints'>): string | undefined {
  if (node.deleting) return 'being deleted'
  for (const taint of node.taints) {
    const disruptor = disruptorOf(taint.key, config.disruptorTaints)
    if (disruptor !== undefined && disruptor.key !== 'node.kubernetes.io/unschedulable') return `tainted ${taint.key} (${disruptor.by})`
  }
  if (!node.ready) return 'not Ready'
  if (node.unschedulable) return 'cordoned'
  return undefined
}

/** The node holds one of our slots: out of service because of us, or back but not yet proven. */
export function holdsSlot (node: Pick<NodeView, 'record'>): boolean {
  return node.record !== undefined && holdingPhases.has(node.record.phase)
}

/** POOL_MAX_UNAVAILABLE: like a PodDisruptionBudget's maxUnavailable, a count or a percentage. */
export type BudgetSpec = { count: number } | { percent: number }

export function parseBudget (text: string): BudgetSpec | undefined {
  const match = /^\s*(\d+)(%?)\s*$/.exec(text)
  if (match === null) return undefined
  const value = Number(match[1])
  if (match[2] === '%') return value >= 1 && value <= 100 ? { percent: value } : undefined
  return value >= 1 ? { count: value } : undefined
}

export function formatBudget (spec: BudgetSpec): string {
  return 'count' in spec ? String(spec.count) : `${spec.percent}%`
}

/** Nodes that may be out of service in a scope of `size` nodes: percentages round down, never below 1. */
export function allowedUnavailable (spec: BudgetSpec, size: number): number {
  if ('count' in spec) return spec.count
  return Math.max(1, Math.floor(size * spec.percent / 100))
}

/** The two scopes a node belongs to. */
export function scopeKeys (place: { pool: string, zone: string }): [pool: string, zone: string] {
  return [`pool=${place.pool}`, `pool=${place.pool},zone=${place.zone}`]
}

/** One scope's measured use: kept up to date by the fleet index as nodes change. */
export type ScopeUsage = {
  key: string
  pool: string
  zone: string | undefined
  size: number
  /** Out of service, whoever caused it. */
  outOfService: number
  /** Of those, because of us (including departed nodes not yet replaced). */
  ours: number
  /** Out of service by cause ("cordoned", "not Ready", "tainted …", "departed"). */
  causes: Map<string, number>
  /** Our slots held here, out of service or not (verifying nodes hold one while in service). */
  slots: number
}

export function emptyUsage (key: string, pool: string, zone: string | undefined): ScopeUsage {
  return { key, pool, zone, size: 0, outOfService: 0, ours: 0, causes: new Map(), slots: 0 }
}

/** What one node (or departed entry) adds to its scopes. */
export type Contribution = { pool: string, zone: string, cause: string | undefined, ours: boolean, slot: boolean }

export function contributionOf (node: NodeView, config: Pick<PolicyConfig, 'disruptorTaints'>): Contribution {
  const slot = holdsSlot(node)
  const cause = outOfServiceCause(node, config)
  return { pool: node.pool, zone: node.zone, cause, ours: slot && cause !== undefined, slot }
}

export const departedCause = 'departed (replaced, replacement not proven yet)'

export function sameContribution (a: Contribution, b: Contribution): boolean {
  return a.pool === b.pool && a.zone === b.zone && a.cause === b.cause && a.ours === b.ours && a.slot === b.slot
}

/** Adds (sign 1) or removes (sign -1) a contribution from a scope's usage. */
export function applyContribution (usage: ScopeUsage, c: Contribution, sign: 1 | -1): void {
  usage.size += sign
  if (c.slot) usage.slots += sign
  if (c.cause === undefined) return
  usage.outOfService += sign
  if (c.ours) usage.ours += sign
  const count = (usage.causes.get(c.cause) ?? 0) + sign
  if (count === 0) usage.causes.delete(c.cause)
  else usage.causes.set(c.cause, count)
}

/** Our own slots: never more than MAX_CONCURRENT_DRAINS nodes held at once, cluster-wide. */
export function semaphoreBlock (slotsHeld: number, config: Pick<PolicyConfig, 'maxConcurrentDrains'>): Block | undefined {
  if (slotsHeld < config.maxConcurrentDrains) return undefined
  return { rule: 'semaphore', reason: 'every remediation slot is in use (MAX_CONCURRENT_DRAINS)', detail: { held: slotsHeld, max: config.maxConcurrentDrains } }
}

/** Taking one more node out of service in its pool or zone must keep both within budget. */
export function budgetBlock (pool: ScopeUsage, zone: ScopeUsage, config: Pick<PolicyConfig, 'poolMaxUnavailable'>): Block | undefined {
  for (const usage of [pool, zone]) {
    const budget = allowedUnavailable(config.poolMaxUnavailable, usage.size)
    if (usage.outOfService + 1 <= budget) continue
    const where = usage.zone === undefined ? `pool ${usage.pool}` : `zone ${usage.zone} of pool ${usage.pool}`
    return {
      rule: 'budget',
      scope: usage.key,
      reason: `${where} has no disruption budget left (POOL_MAX_UNAVAILABLE ${formatBudget(config.poolMaxUnavailable)})`,
      detail: { size: usage.size, outOfService: usage.outOfService, ours: usage.ours, others: usage.outOfService - usage.ours, budget }
    }
  }
  return undefined
}

/** Another controller (or a person, or the kubelet) already has this node out of service. */
export function disruptedElsewhereBlock (node: NodeView, config: Pick<PolicyConfig, 'disruptorTaints'>): Block | undefined {
  const cause = outOfServiceCause(node, config)
  if (cause === undefined) return undefined
  return { rule: 'disrupted-elsewhere', reason: `node is already out of service: ${cause}; another controller or an operator has it` }
}
