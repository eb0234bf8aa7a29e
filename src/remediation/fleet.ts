import { applyContribution, contributionOf, departedCause, emptyUsage, scopeKeys, type Contribution, type ScopeUsage } from '../policy/budget.ts'
import type { PolicyConfig } from '../policy/config.ts'
import { alertedWithin, isLive } from '../policy/expiry.ts'
import { parseTime } from '../time.ts'
import { emptyFleetState, type DepartedEntry, type FleetState } from './fleet-state.ts'
import type { NodeView, Snapshot } from './snapshot.ts'

/**
 * The fleet as the decision core reads it: every node's view, plus the aggregates the fleet-wide
 * rules need (per pool and zone: size, out of service — ours and others', by cause —, slots held;
 * the pending nodes; the nodes with alerts), kept up to date as nodes change rather than recounted.
 * A node change costs O(1); a decision reads counts instead of walking 5,000 nodes. Pure data:
 * no I/O, no clock — the shell feeds it from the watch cache.
 */
export type Fleet = Snapshot & {
  readonly size: number
  upsert (view: NodeView): void
  remove (name: string): NodeView | undefined
  readonly state: FleetState
  setState (state: FleetState): void
  /** Usage of a scope key (`pool=P` or `pool=P,zone=Z`); empty when no node is there. */
  usage (key: string): ScopeUsage
  scopes (): Iterable<ScopeUsage>
  /** Our slots, cluster-wide: nodes held in any holding phase plus departed entries. */
  slotsHeld (): number
  /** Pending nodes, first come first served (by when they became pending, then by name). */
  pendingInTurn (): NodeView[]
  /** Nodes of a scope that alerted within `withinMs` before `now`: the breaker's count. */
  alertedWithin (key: string, now: number, withinMs: number): number
  /** When the newest still-live alert episode was first recorded, fleet-wide: the storm settle clock. */
  lastNewAlertingAt (now: number): number | undefined
  /** When the pool last started a remediation, from the persisted records. */
  lastStart (pool: string): number | undefined
  /** Nodes whose records hold any alert episode. */
  withAlerts (): Iterable<NodeView>
  /** Nodes with a record (the ones remediation knows), without walking the rest of the fleet. */
  withRecords (): Iterable<NodeView>
}

export function createFleet (config: PolicyConfig): Fleet {
  const views = new Map<string, NodeView>()
  const contributions = new Map<string, Contribution>()
  const usages = new Map<string, ScopeUsage>()
  const pending = new Set<string>()
  const alerting = new Map<string, Set<string>>()
  const alerted = new Set<string>()
  const recorded = new Set<string>()
  const starts = new Map<string, Map<string, number>>()
  let slots = 0
  let state: FleetState = emptyFleetState

  const usageFor = (key: string, pool: string, zone: string | undefined): ScopeUsage => {
    let usage = usages.get(key)
    if (usage === undefined) {
      usage = emptyUsage(key, pool, zone)
      usages.set(key, usage)
    }
    return usage
  }

  function contribute (c: Contribution, sign: 1 | -1) {
    const [poolKey, zoneKey] = scopeKeys(c)
    applyContribution(usageFor(poolKey, c.pool, undefined), c, sign)
    applyContribution(usageFor(zoneKey, c.pool, c.zone), c, sign)
    if (c.slot) slots += sign
  }

  function index (view: NodeView, sign: 1 | -1) {
    const name = view.name
    if (sign === 1) {
      const c = contributionOf(view, config)
      contributions.set(name, c)
      contribute(c, 1)
    } else {
      contribute(contributions.get(name)!, -1)
      contributions.delete(name)
    }
    const record = view.record
    if (record !== undefined) {
      if (sign === 1) recorded.add(name)
      else recorded.delete(name)
    }
    if (record?.phase === 'pending') {
      if (sign === 1) pending.add(name)
      else pending.delete(name)
    }
    if (record !== undefined && record.alerts.length > 0) {
      if (sign === 1) alerted.add(name)
      else alerted.delete(name)
      for (const key of scopeKeys(view)) {
        let set = alerting.get(key)
        if (set === undefined) alerting.set(key, set = new Set())
        if (sign === 1) set.add(name)
        else set.delete(name)
      }
    }
    if (record?.startedAt !== undefined) {
      let byNode = starts.get(view.pool)
      if (byNode === undefined) starts.set(view.pool, byNode = new Map())
      if (sign === 1) byNode.set(name, parseTime(record.startedAt))
      else byNode.delete(name)
    }
  }

  const departedContribution = (entry: DepartedEntry): Contribution => ({ pool: entry.pool, zone: entry.zone, cause: departedCause, ours: true, slot: true })

  return {
    get: name => views.get(name),
    has: name => views.has(name),
    values: () => views.values(),
    get size () { return views.size },
    upsert (view) {
      const old = views.get(view.name)
      if (old !== undefined) index(old, -1)
      views.set(view.name, view)
      index(view, 1)
    },
    remove (name) {
      const old = views.get(name)
      if (old === undefined) return undefined
      index(old, -1)
      views.delete(name)
      return old
    },
    get state () { return state },
    setState (next) {
      if (next.departed !== state.departed) {
        for (const entry of state.departed.values()) contribute(departedContribution(entry), -1)
        for (const entry of next.departed.values()) contribute(departedContribution(entry), 1)
      }
      state = next
    },
    usage (key) {
      const usage = usages.get(key)
      if (usage !== undefined) return usage
      const [, pool, zone] = /^pool=(.*?)(?:,zone=(.*))?$/.exec(key) ?? [, key, undefined]
      return emptyUsage(key, pool ?? key, zone)
    },
    scopes: () => [...usages.values()].filter(u => u.size > 0),
    slotsHeld: () => slots,
    pendingInTurn () {
      const order = (a: string, b: string) => a < b ? -1 : a > b ? 1 : 0
      return [...pending].map(name => views.get(name)!).sort((a, b) => order(a.record!.since, b.record!.since) || order(a.name, b.name))
    },
    alertedWithin (key, now, withinMs) {
      let count = 0
      for (const name of alerting.get(key) ?? []) if (alertedWithin(views.get(name)!.record, now, withinMs, config)) count++
      return count
    },
    lastNewAlertingAt (now) {
      let last: number | undefined
      for (const name of alerted) {
        for (const alert of views.get(name)!.record!.alerts) {
          if (!isLive(alert, now, config)) continue
          // An episode counting again after it stopped is as new to the storm settle time as a first one.
          const at = parseTime(alert.revivedAt ?? alert.receivedAt)
          if (last === undefined || at > last) last = at
        }
      }
      return last
    },
    lastStart (pool) {
      let last: number | undefined
      for (const at of starts.get(pool)?.values() ?? []) if (last === undefined || at > last) last = at
      return last
    },
    * withAlerts () {
      for (const name of alerted) yield views.get(name)!
    },
    * withRecords () {
      for (const name of recorded) yield views.get(name)!
    }
  }
}
