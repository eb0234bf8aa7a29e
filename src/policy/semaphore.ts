import { holdingPhases } from '../remediation/record.ts'
import type { Snapshot } from '../remediation/snapshot.ts'
import type { Block, PolicyConfig } from './config.ts'

/**
 * Drains in flight, counted from the persisted node states rather than from memory, so that a
 * restart or a new leader cannot reset the semaphore.
 */
export function drainsInFlight (snapshot: Snapshot): number {
  let count = 0
  for (const node of snapshot.values()) if (node.record !== undefined && holdingPhases.has(node.record.phase)) count++
  return count
}

export function semaphoreBlock (inFlight: number, config: PolicyConfig): Block | undefined {
  if (inFlight < config.maxConcurrentDrains) return undefined
  return { rule: 'semaphore', reason: `${inFlight} of ${config.maxConcurrentDrains} drain slots in use` }
}
