import { iso } from '../time.ts'
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
  // One pair of scope records per pool/zone place, found without building keys for every node.
  const places = new Map<string, BreakerScope[]>()
  for (const node of snapshot.values()) {
    const place = `${node.pool}\0${node.zone}`
    let pair = places.get(place)
    if (pair === undefined) {
      pair = scopesOf(node).map(key => {
        const scope = scopes.get(key) ?? { key, alerting: 0, size: 0 }
        scopes.set(key, scope)
        return scope
      })
      places.set(place, pair)
    }
    const alerting = isAlerting(node) ? 1 : 0
    for (const scope of pair) {
      scope.alerting += alerting
      scope.size += 1
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

/**
 * What the open breakers block, as a lookup per node. Blocks are built once per scope: in a storm
 * every node of the pool asks, and they all get the same answer.
 */
export function breakerBlocks (memory: BreakerMemory, config: PolicyConfig): (node: NodeView) => Block | undefined {
  if (memory.size === 0) return () => undefined
  const blocks = new Map<string, Block>()
  for (const [key, state] of memory) {
    const settling = state.belowSince === undefined
      ? `at or above ${Math.round(config.breakerThreshold * 100)}% of nodes alerting`
      : `below the threshold since ${state.belowSince}, settling for ${config.breakerSettleMs / 1000}s`
    blocks.set(key, { rule: 'circuit-breaker', scope: key, reason: `circuit breaker open for ${key} since ${state.openSince} (${settling})` })
  }
  const byPlace = new Map<string, Block | undefined>()
  return node => {
    const place = `${node.pool}\0${node.zone}`
    if (!byPlace.has(place)) {
      const [pool, zone] = scopesOf(node)
      byPlace.set(place, blocks.get(pool!) ?? blocks.get(zone!))
    }
    return byPlace.get(place)
  }
}

export function breakerBlock (node: NodeView, memory: BreakerMemory, config: PolicyConfig): Block | undefined {
  return breakerBlocks(memory, config)(node)
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
