import { iso } from '../remediation/record.ts'
import type { NodeView, Snapshot } from '../remediation/snapshot.ts'
import type { Block, PolicyConfig } from './config.ts'

/**
 * When a large share of a pool (or of one zone within it) alerts at once, the cause is almost
 * never the nodes: it is the signal, the network or a dependency. Draining would make it worse.
 * The breaker opens per scope, stays open until the share has been below the threshold for a
 * settle time (no latching on one good sample), and then lets the semaphore pace the backlog.
 */
export type BreakerScope = { key: string, alerting: number, size: number }
export type BreakerState = { openSince: string, belowSince?: string }
/** Open breakers by scope key. Kept by the shell between evaluations; everything else is derived. */
export type BreakerMemory = ReadonlyMap<string, BreakerState>

export function scopesOf (node: Pick<NodeView, 'pool' | 'zone'>): string[] {
  return [`pool=${node.pool}`, `pool=${node.pool},zone=${node.zone}`]
}

export function isAlerting (node: NodeView): boolean {
  return node.record?.alert?.status === 'firing'
}

export function measureScopes (snapshot: Snapshot): Map<string, BreakerScope> {
  const scopes = new Map<string, BreakerScope>()
  for (const node of snapshot.values()) {
    const alerting = isAlerting(node) ? 1 : 0
    for (const key of scopesOf(node)) {
      const scope = scopes.get(key) ?? { key, alerting: 0, size: 0 }
      scope.alerting += alerting
      scope.size += 1
      scopes.set(key, scope)
    }
  }
  return scopes
}

function tripped (scope: BreakerScope | undefined, config: PolicyConfig): boolean {
  return scope !== undefined && scope.alerting >= config.breakerMinNodes && scope.alerting / scope.size >= config.breakerThreshold
}

/** The breakers after looking at the fleet at `now`. Scopes that closed are dropped. */
export function updateBreakers (memory: BreakerMemory, snapshot: Snapshot, now: number, config: PolicyConfig): Map<string, BreakerState> {
  const scopes = measureScopes(snapshot)
  const next = new Map<string, BreakerState>()
  for (const scope of scopes.values()) {
    if (tripped(scope, config) && !memory.has(scope.key)) next.set(scope.key, { openSince: iso(now) })
  }
  for (const [key, state] of memory) {
    if (tripped(scopes.get(key), config)) {
      next.set(key, { openSince: state.openSince })
    } else {
      const belowSince = state.belowSince ?? iso(now)
      if (now - Date.parse(belowSince) < config.breakerSettleMs) next.set(key, { openSince: state.openSince, belowSince })
    }
  }
  return next
}

export function breakerBlock (node: NodeView, memory: BreakerMemory, config: PolicyConfig): Block | undefined {
  for (const key of scopesOf(node)) {
    const state = memory.get(key)
    if (state === undefined) continue
    const settling = state.belowSince === undefined
      ? `at or above ${Math.round(config.breakerThreshold * 100)}% of nodes alerting`
      : `below the threshold since ${state.belowSince}, settling for ${config.breakerSettleMs / 1000}s`
    return { rule: 'circuit-breaker', scope: key, reason: `circuit breaker open for ${key} since ${state.openSince} (${settling})` }
  }
  return undefined
}

/**
 * After a restart the memory is gone; nodes still deferred by the breaker prove it was open, so
 * those scopes start open and settling rather than closed.
 */
export function recoverBreakers (snapshot: Snapshot, now: number): Map<string, BreakerState> {
  const memory = new Map<string, BreakerState>()
  for (const node of snapshot.values()) {
    const deferred = node.record?.phase === 'pending' ? node.record.deferred : undefined
    if (deferred?.scope === undefined) continue
    memory.set(deferred.scope, { openSince: node.record!.since, belowSince: iso(now) })
  }
  return memory
}
