import { iso, parseTime } from '../time.ts'
import type { ScopeUsage } from './budget.ts'
import type { Block, PolicyConfig } from './config.ts'

/**
 * When a large share of a pool (or of one zone within it) alerts at once, the cause is almost
 * never the nodes: it is the signal, the network or a dependency. Draining would make it worse.
 *
 * Order-independent by construction: nothing here depends on how a storm was split into
 * notifications, which replica received them, or how fast the API answered.
 * - The breaker's state is derived from the persisted records: a scope is open while the nodes
 *   that alerted within BREAKER_SETTLE reach the threshold of its capacity (nodes out of service
 *   for other reasons are not capacity). So it stays open until the share has been below the
 *   threshold for the settle time, and every replica computes the same answer.
 * - No remediation starts until the fleet has seen no new alerting node for STORM_SETTLE: a storm
 *   delivered node by node is recorded whole before anything is decided.
 * - Closing is paced (slow start): after a storm, starts in that scope resume one at a time and
 *   the allowance doubles only after each proven fix. That memory is persisted in the fleet state.
 */

export function breakerOpen (usage: ScopeUsage, alerting: number, config: Pick<PolicyConfig, 'breakerThreshold' | 'breakerMinNodes'>): boolean {
  const capacity = usage.size - (usage.outOfService - usage.ours)
  return alerting >= config.breakerMinNodes && alerting >= config.breakerThreshold * Math.max(1, capacity)
}

export function breakerBlock (usage: ScopeUsage, alerting: number, config: Pick<PolicyConfig, 'breakerThreshold' | 'breakerMinNodes' | 'breakerSettleMs'>): Block | undefined {
  if (!breakerOpen(usage, alerting, config)) return undefined
  return {
    rule: 'circuit-breaker',
    scope: usage.key,
    reason: `circuit breaker open for ${usage.key}: at least ${Math.round(config.breakerThreshold * 100)}% of its nodes alerted within BREAKER_SETTLE`,
    detail: { alerting, capacity: usage.size - (usage.outOfService - usage.ours), threshold: config.breakerThreshold, settleSeconds: config.breakerSettleMs / 1000 }
  }
}

/** Fleet-wide: a new alerting node less than STORM_SETTLE ago means the storm's picture may be incomplete. */
export function stormSettleBlock (lastNewAlertingAt: number | undefined, now: number, config: Pick<PolicyConfig, 'stormSettleMs'>): Block | undefined {
  if (lastNewAlertingAt === undefined || now - lastNewAlertingAt >= config.stormSettleMs) return undefined
  const settled = lastNewAlertingAt + config.stormSettleMs
  return {
    rule: 'storm-settle',
    reason: 'a new alerting node was recorded less than STORM_SETTLE ago; waiting until the fleet has been quiet that long',
    detail: { lastNewAlertAt: iso(lastNewAlertingAt), settledAt: iso(settled) },
    until: settled
  }
}

/** Persisted per scope once its breaker has opened: when, when it closed, and fixes proven since. */
export type BreakerMemory = { openSince: string, closedAt?: string, proven: number }

/** How many of our slots a recovering scope may hold: one, doubling with each proven fix. */
export function slowStartAllowance (memory: BreakerMemory | undefined): number {
  if (memory === undefined) return Infinity
  if (memory.closedAt === undefined) return 0
  return 2 ** memory.proven
}

export function slowStartBlock (usage: ScopeUsage, memory: BreakerMemory | undefined): Block | undefined {
  const allowance = slowStartAllowance(memory)
  if (usage.slots < allowance || memory?.closedAt === undefined) return undefined
  return {
    rule: 'slow-start',
    scope: usage.key,
    reason: `${usage.key} is recovering from a storm (breaker closed at ${memory.closedAt}): one remediation at a time, doubling after each proven fix`,
    detail: { held: usage.slots, allowance, proven: memory.proven }
  }
}

/**
 * The persisted breaker memory after looking at the fleet: a scope that is open now is
 * remembered; one that was open and is not any more is marked closed (slow start begins); a
 * recovered scope whose allowance reaches MAX_CONCURRENT_DRAINS is forgotten. Returns the same
 * map when nothing changed, so the shell writes only on change.
 */
export function updateBreakerMemory (memory: ReadonlyMap<string, BreakerMemory>, open: ReadonlySet<string>, now: number, config: Pick<PolicyConfig, 'maxConcurrentDrains'>): ReadonlyMap<string, BreakerMemory> {
  let next: Map<string, BreakerMemory> | undefined
  const change = (key: string, value: BreakerMemory | undefined) => {
    next ??= new Map(memory)
    if (value === undefined) next.delete(key)
    else next.set(key, value)
  }
  for (const key of open) {
    const known = memory.get(key)
    if (known === undefined) change(key, { openSince: iso(now), proven: 0 })
    else if (known.closedAt !== undefined) change(key, { openSince: iso(now), proven: 0 })
  }
  for (const [key, known] of memory) {
    if (open.has(key)) continue
    if (known.closedAt === undefined) change(key, { ...known, closedAt: iso(now), proven: 0 })
    else if (slowStartAllowance(known) >= config.maxConcurrentDrains) change(key, undefined)
  }
  return next ?? memory
}

/** A fix proven in a recovering scope doubles its allowance. */
export function recordProvenFix (memory: ReadonlyMap<string, BreakerMemory>, scopes: readonly string[], provenAt: number): ReadonlyMap<string, BreakerMemory> {
  let next: Map<string, BreakerMemory> | undefined
  for (const key of scopes) {
    const known = memory.get(key)
    if (known?.closedAt === undefined || parseTime(known.closedAt) > provenAt) continue
    next ??= new Map(memory)
    next.set(key, { ...known, proven: known.proven + 1 })
  }
  return next ?? memory
}
