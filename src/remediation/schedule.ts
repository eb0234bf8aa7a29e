import { breakerBlocks, type BreakerMemory } from '../policy/circuit-breaker.ts'
import type { Block, PolicyConfig } from '../policy/config.ts'
import { lastStartByPool, nodeCooldownBlock, poolSpacingBlock } from '../policy/cooldown.ts'
import { hysteresisBlock } from '../policy/hysteresis.ts'
import { drainsInFlight, semaphoreBlock } from '../policy/semaphore.ts'
import type { NodeView, Snapshot } from './snapshot.ts'
import { cooldownOver, uncordonedByOperator } from './transitions.ts'

export type Schedule = { start: string[], blocked: Map<string, Block> }

function pendingInTurn (snapshot: Snapshot): NodeView[] {
  const pending = [...snapshot.values()].filter(node => node.record?.phase === 'pending')
  const order = (a: string, b: string) => a < b ? -1 : a > b ? 1 : 0
  return pending.sort((a, b) => order(a.record!.since, b.record!.since) || order(a.name, b.name))
}

/**
 * Which pending nodes may start now, first come first served, and what holds back the others.
 * Every start consumes a semaphore slot and the pool's spacing, so one call never over-commits.
 */
export function nextToStart (snapshot: Snapshot, now: number, config: PolicyConfig, breakers: BreakerMemory): Schedule {
  const schedule: Schedule = { start: [], blocked: new Map() }
  let inFlight = drainsInFlight(snapshot)
  const lastStart = lastStartByPool(snapshot)
  const breakerBlock = breakerBlocks(breakers, config)
  for (const node of pendingInTurn(snapshot)) {
    const block = hysteresisBlock(node.record!, now, config) ??
      nodeCooldownBlock(node, now) ??
      breakerBlock(node) ??
      poolSpacingBlock(node, lastStart.get(node.pool), now, config) ??
      semaphoreBlock(inFlight, config)
    if (block !== undefined) {
      schedule.blocked.set(node.name, block)
    } else {
      schedule.start.push(node.name)
      inFlight++
      lastStart.set(node.pool, now)
    }
  }
  return schedule
}

export type Step =
  | { kind: 'start', node: string }
  | { kind: 'defer', node: string, block: Block }
  /** cordoned, draining or remediating: make sure its work is running (it may have been interrupted) */
  | { kind: 'resume', node: string }
  | { kind: 'operator-uncordoned', node: string }
  | { kind: 'end-cooldown', node: string }

/** Level-triggered: from the persisted states alone, what the leader should do now. */
export function planReconcile (snapshot: Snapshot, now: number, config: PolicyConfig, breakers: BreakerMemory): Step[] {
  const steps: Step[] = []
  for (const node of snapshot.values()) {
    const record = node.record
    if (record === undefined) continue
    switch (record.phase) {
      case 'cordoned':
      case 'draining':
      case 'rebooting':
      case 'failed':
        if (uncordonedByOperator(node)) steps.push({ kind: 'operator-uncordoned', node: node.name })
        else if (record.phase !== 'failed') steps.push({ kind: 'resume', node: node.name })
        break
      case 'remediating':
        steps.push({ kind: 'resume', node: node.name })
        break
      case 'cooldown':
        if (cooldownOver(node, now)) steps.push({ kind: 'end-cooldown', node: node.name })
        break
    }
  }
  const schedule = nextToStart(snapshot, now, config, breakers)
  for (const node of schedule.start) steps.push({ kind: 'start', node })
  for (const [node, block] of schedule.blocked) steps.push({ kind: 'defer', node, block })
  return steps
}
