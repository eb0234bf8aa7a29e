import type { NodeView } from '../remediation/snapshot.ts'
import { iso, parseTime } from '../time.ts'
import type { Block, PolicyConfig } from './config.ts'

/** Per node: no remediation before its cooldown ends. */
export function nodeCooldownBlock (node: NodeView, now: number): Block | undefined {
  const until = node.record?.cooldownUntil
  if (until === undefined || parseTime(until) <= now) return undefined
  return { rule: 'cooldown', reason: `node in cooldown until ${until}`, until: parseTime(until) }
}

/** Per pool: a minimum spacing between remediation starts. */
export function poolSpacingBlock (node: NodeView, lastStart: number | undefined, now: number, config: PolicyConfig): Block | undefined {
  if (lastStart === undefined || now - lastStart >= config.poolSpacingMs) return undefined
  const next = lastStart + config.poolSpacingMs
  return { rule: 'spacing', scope: `pool=${node.pool}`, reason: `pool ${node.pool} started a remediation at ${iso(lastStart)}; next allowed at ${iso(next)}`, until: next }
}
