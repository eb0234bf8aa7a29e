import { budgetBlock, disruptedElsewhereBlock, outOfServiceCause, scopeKeys, semaphoreBlock, type ScopeUsage } from '../policy/budget.ts'
import { breakerBlock, slowStartBlock, stormSettleBlock } from '../policy/circuit-breaker.ts'
import type { Block, PolicyConfig } from '../policy/config.ts'
import { nodeCooldownBlock, poolSpacingBlock } from '../policy/cooldown.ts'
import { drivingAlert, liveAlerts, nextExpiry, whyEnded } from '../policy/expiry.ts'
import { hysteresisBlock } from '../policy/hysteresis.ts'
import { rungFor } from '../policy/ladder.ts'
import { iso, parseTime } from '../time.ts'
import type { DepartedEntry } from './fleet-state.ts'
import type { Fleet } from './fleet.ts'
import type { RungAction } from './record.ts'
import type { NodeView } from './snapshot.ts'
import { backFromReboot, cooldownOver, dwellEndsAt, uncordonedByOperator } from './transitions.ts'

/**
 * Blocks the shell knows of that are not in the node views: an operator's pause, a closed
 * maintenance window, and what the pod checks found when the node last had its turn (protected
 * pods, no room) — such a node must not take a slot that another could use.
 */
export type Gates = {
  paused?: (pool: string) => Block | undefined
  window?: () => Block | undefined
  startVerdicts?: (node: string) => Block | undefined
}

export type Start = { node: string, action: RungAction }
export type Schedule = {
  start: Start[]
  blocked: Map<string, Block>
  /** The earliest time a block lifts by itself: the engine wakes up then. */
  wakeAt: number | undefined
}

/** A node-level veto: the operator's annotation (optionally until a time) or Karpenter's do-not-disrupt. */
export function vetoBlock (node: NodeView, now: number): Block | undefined {
  const veto = node.veto
  if (veto === undefined) return undefined
  if (veto.until !== undefined) {
    const until = parseTime(veto.until)
    if (Number.isNaN(until) || until <= now) return undefined
    return { rule: 'veto', reason: `vetoed until ${veto.until}: ${veto.reason}`, until }
  }
  return { rule: 'veto', reason: `vetoed: ${veto.reason}` }
}

/**
 * Truncated notifications touching the pool make its picture doubtful until an untruncated
 * notification of that group comes, or until the group has not been sent truncated for ALERT_TTL
 * (Alertmanager repeats a live group every repeat_interval: silence past the TTL means it ended).
 */
function truncatedBlock (node: NodeView, fleet: Fleet, now: number, config: PolicyConfig): Block | undefined {
  for (const doubt of fleet.state.doubts.values()) {
    if (!doubt.pools.includes(node.pool) || now - parseTime(doubt.lastSeen ?? doubt.since) >= config.alertTtlMs) continue
    return {
      rule: 'truncated',
      scope: `pool=${node.pool}`,
      reason: `Alertmanager truncated a notification touching pool ${node.pool} (max_alerts); waiting for an untruncated notification of that group, or for the group to go quiet for ALERT_TTL`,
      detail: { hidden: doubt.hidden, since: doubt.since },
      until: parseTime(doubt.lastSeen ?? doubt.since) + config.alertTtlMs
    }
  }
  return undefined
}

/**
 * Which pending nodes may start now, first come first served, and what holds back the others.
 * Every start consumes a slot, the pool's spacing and one unit of the pool's and the zone's
 * budget, so one call never over-commits.
 */
export function nextToStart (fleet: Fleet, now: number, config: PolicyConfig, gates: Gates = {}): Schedule {
  const schedule: Schedule = { start: [], blocked: new Map(), wakeAt: undefined }
  const pending = fleet.pendingInTurn()
  if (pending.length === 0) return schedule
  let slots = fleet.slotsHeld()
  // What this call itself starts, on top of the fleet's counts.
  const startedIn = new Map<string, number>()
  const lastStart = new Map<string, number>()
  const alertingIn = new Map<string, number>()
  const usage = (key: string): ScopeUsage => {
    const base = fleet.usage(key)
    const extra = startedIn.get(key) ?? 0
    return extra === 0 ? base : { ...base, outOfService: base.outOfService + extra, ours: base.ours + extra, slots: base.slots + extra }
  }
  const alerting = (key: string) => {
    let count = alertingIn.get(key)
    if (count === undefined) alertingIn.set(key, count = fleet.alertedWithin(key, now, config.breakerSettleMs))
    return count
  }
  const storm = stormSettleBlock(fleet.lastNewAlertingAt(now), now, config)
  const window = gates.window?.()
  const wake = (block: Block | undefined) => {
    if (block?.until !== undefined && (schedule.wakeAt === undefined || block.until < schedule.wakeAt)) schedule.wakeAt = block.until
    return block
  }

  for (const node of pending) {
    const record = node.record!
    const live = liveAlerts(record, now, config)
    const [poolKey, zoneKey] = scopeKeys(node)
    const pool = usage(poolKey)
    const zone = usage(zoneKey)
    const block = wake(
      disruptedElsewhereBlock(node, config) ??
      vetoBlock(node, now) ??
      hysteresisBlock(record, live, now, config) ??
      nodeCooldownBlock(node, now) ??
      gates.paused?.(node.pool) ??
      window ??
      truncatedBlock(node, fleet, now, config) ??
      gates.startVerdicts?.(node.name) ??
      storm ??
      breakerBlock(pool, alerting(poolKey), config) ??
      breakerBlock(zone, alerting(zoneKey), config) ??
      slowStartBlock(pool, fleet.state.breakers.get(poolKey)) ??
      slowStartBlock(zone, fleet.state.breakers.get(zoneKey)) ??
      poolSpacingBlock(node, lastStart.get(node.pool) ?? fleet.lastStart(node.pool), now, config) ??
      budgetBlock(pool, zone, config) ??
      semaphoreBlock(slots, config))
    if (block !== undefined) {
      schedule.blocked.set(node.name, block)
      continue
    }
    schedule.start.push({ node: node.name, action: rungFor(record, drivingAlert(live)!.action, now, config) })
    slots++
    lastStart.set(node.pool, now)
    for (const key of [poolKey, zoneKey]) startedIn.set(key, (startedIn.get(key) ?? 0) + 1)
  }
  return schedule
}

export type Step =
  | { kind: 'cancel', node: string, reason: string }
  /** cordoned, draining or remediating: make sure its work is running (it may have been interrupted) */
  | { kind: 'resume', node: string }
  | { kind: 'operator-uncordoned', node: string }
  | { kind: 'back-in-service', node: string }
  | { kind: 'timeout', node: string, outcome: 'reboot-timeout' | 'replace-timeout', reason: string }
  | { kind: 'interrupt-dwell', node: string }
  | { kind: 'resume-dwell', node: string }
  | { kind: 'taken-over', node: string, cause: string }
  | { kind: 'proven', node: string }
  | { kind: 'end-cooldown', node: string }
  | { kind: 'not-fixed', node: string, reason: string }

/**
 * Level-triggered, per node: from its view alone (and the clock), what the leader should do now.
 * Pending nodes are the fleet-wide schedule's business, except letting go of ones with nothing
 * firing any more.
 */
export function planNode (node: NodeView, now: number, config: PolicyConfig): Step | undefined {
  const record = node.record
  if (record === undefined) return undefined
  const name = node.name
  switch (record.phase) {
    case 'pending': {
      const ended = record.alerts.filter(alert => alert.status !== 'resolved' || alert.endedAt !== undefined)
      if (liveAlerts(record, now, config).length > 0) return undefined
      const why = ended.length === 0 ? 'no alert recorded' : ended.map(alert => whyEnded(alert, now, config)).join('; ')
      return { kind: 'cancel', node: name, reason: `no alert of the node counts any more (${why})` }
    }
    case 'cordoned':
    case 'draining':
    case 'remediating':
      return uncordonedByOperator(node) ? { kind: 'operator-uncordoned', node: name } : { kind: 'resume', node: name }
    case 'rebooting':
      if (uncordonedByOperator(node)) return { kind: 'operator-uncordoned', node: name }
      if (backFromReboot(node)) return { kind: 'back-in-service', node: name }
      if (now >= parseTime(record.rebootDeadline!)) return { kind: 'timeout', node: name, outcome: 'reboot-timeout', reason: `node not Ready on a new boot by ${record.rebootDeadline}; left cordoned` }
      return undefined
    case 'replacing':
      if (uncordonedByOperator(node)) return { kind: 'operator-uncordoned', node: name }
      if (now >= parseTime(record.replaceDeadline!)) return { kind: 'timeout', node: name, outcome: 'replace-timeout', reason: `the cloud did not remove the node by ${record.replaceDeadline} (REPLACE_TIMEOUT); left cordoned` }
      return undefined
    case 'verifying': {
      // We uncordoned it: a cordon or a disruptor's taint now is someone else's.
      const cause = outOfServiceCause({ ...node, ready: true, deleting: false }, config)
      if (cause !== undefined) return { kind: 'taken-over', node: name, cause }
      if (!node.ready) {
        if (record.dwellInterruptedAt === undefined) return { kind: 'interrupt-dwell', node: name }
        if (now >= parseTime(record.dwellInterruptedAt) + config.rebootTimeoutMs) return { kind: 'not-fixed', node: name, reason: `not Ready since ${record.dwellInterruptedAt}, REBOOT_TIMEOUT after the fix: not fixed; the next rung is needed` }
        return undefined
      }
      if (record.dwellInterruptedAt !== undefined) return { kind: 'resume-dwell', node: name }
      return now >= dwellEndsAt(record, config) ? { kind: 'proven', node: name } : undefined
    }
    case 'failed':
    case 'quarantined':
      return uncordonedByOperator(node) ? { kind: 'operator-uncordoned', node: name } : undefined
    case 'cooldown': {
      if (!cooldownOver(node, now)) return undefined
      const still = stillFiringAfterFix(node, now, config)
      return still === undefined ? { kind: 'end-cooldown', node: name } : { kind: 'not-fixed', node: name, reason: still }
    }
    default:
      return undefined
  }
}

/** An episode that drove the last remediation was delivered firing again after the fix was proven. */
export function stillFiringAfterFix (node: NodeView, now: number, config: PolicyConfig): string | undefined {
  const record = node.record!
  if (record.provenAt === undefined || record.startedAt === undefined) return undefined
  const provenAt = parseTime(record.provenAt)
  const startedAt = parseTime(record.startedAt)
  const still = liveAlerts(record, now, config).find(alert => parseTime(alert.receivedAt) <= startedAt && parseTime(alert.lastSeen) > provenAt)
  return still === undefined ? undefined : `alert ${still.alertname} (firing since ${still.startsAt}) is still being delivered after the fix was proven; the next rung is needed`
}

/** The earliest time this node's plan can change without any event: the engine wakes it up then. */
export function dueAt (node: NodeView, now: number, config: PolicyConfig): number | undefined {
  const record = node.record
  if (record === undefined) return undefined
  let due = nextExpiry(record, now, config)
  const consider = (at: number | undefined) => { if (at !== undefined && !Number.isNaN(at) && (due === undefined || at < due)) due = at }
  switch (record.phase) {
    case 'rebooting': consider(parseTime(record.rebootDeadline!)); break
    case 'replacing': consider(parseTime(record.replaceDeadline!)); break
    case 'verifying': consider(record.dwellInterruptedAt === undefined ? dwellEndsAt(record, config) : parseTime(record.dwellInterruptedAt) + config.rebootTimeoutMs); break
    case 'cooldown': consider(parseTime(record.cooldownUntil!)); break
  }
  return due
}

/**
 * Departed nodes (held, then removed by the cloud): an entry is proven once the pool has been back
 * at its size, every newcomer Ready and schedulable, for VERIFY_DWELL; past its deadline it is
 * marked failed and keeps holding its slot until an operator removes it. Pure: returns the new
 * entries (the same map when nothing changed), the proven ones, and when to look again.
 */
export function progressDeparted (fleet: Fleet, now: number, config: PolicyConfig): { departed: ReadonlyMap<string, DepartedEntry>, proven: DepartedEntry[], failed: DepartedEntry[], wakeAt: number | undefined } {
  const current = fleet.state.departed
  const result = { departed: current, proven: [] as DepartedEntry[], failed: [] as DepartedEntry[], wakeAt: undefined as number | undefined }
  if (current.size === 0) return result
  let next: Map<string, DepartedEntry> | undefined
  const change = (name: string, entry: DepartedEntry | undefined) => {
    next ??= new Map(current)
    if (entry === undefined) next.delete(name)
    else next.set(name, entry)
  }
  const wake = (at: number) => { if (result.wakeAt === undefined || at < result.wakeAt) result.wakeAt = at }
  const pools = new Map<string, NodeView[]>()
  for (const node of fleet.values()) {
    if (node.deleting) continue
    let list = pools.get(node.pool)
    if (list === undefined) pools.set(node.pool, list = [])
    list.push(node)
  }
  for (const [name, entry] of current) {
    const present = pools.get(entry.pool) ?? []
    const goneAt = parseTime(entry.goneAt)
    const back = present.length >= entry.expected && present.every(node => node.createdAt <= goneAt || outOfServiceCause(node, config) === undefined)
    if (back) {
      const since = entry.backSince === undefined ? now : parseTime(entry.backSince)
      if (now - since >= config.verifyDwellMs) {
        change(name, undefined)
        result.proven.push(entry)
        continue
      }
      if (entry.backSince === undefined) change(name, { ...entry, backSince: iso(now) })
      wake(since + config.verifyDwellMs)
    } else if (entry.backSince !== undefined) {
      const { backSince: _, ...rest } = entry
      change(name, rest)
    }
    const deadline = parseTime(entry.deadline)
    if (entry.failed === undefined && now >= deadline && !back) {
      const failed = { ...(next?.get(name) ?? entry), failed: `pool ${entry.pool} not back at ${entry.expected} nodes in service by ${entry.deadline} (REPLACE_TIMEOUT)` }
      change(name, failed)
      result.failed.push(failed)
    } else if (entry.failed === undefined) {
      wake(deadline)
    }
  }
  result.departed = next ?? current
  return result
}
