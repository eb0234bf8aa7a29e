import { iso } from '../time.ts'
import type { NodeView, Snapshot } from '../remediation/snapshot.ts'
import type { Block, PolicyConfig } from './config.ts'

/** Per node: no remediation before its cooldown ends. */
export function nodeCooldownBlock (node: NodeView, now: number): Block | undefined {
  const until = node.record?.cooldownUntil
  if (until !== undefined && Date.parse(until) > now) return { rule: 'cooldown', reason: `node in cooldown until ${until}` }
  return undefined
}

/** When each pool last started a remediation, derived from the persisted records. */
export function lastStartByPool (snapshot: Snapshot): Map<string, number> {
  const last = new Map<string, number>()
  for (const node of snapshot.values()) {
    const started = node.record?.startedAt
    if (started === undefined) continue
    const at = Date.parse(started)
    if (at > (last.get(node.pool) ?? -Infinity)) last.set(node.pool, at)
  }
  return last
}

/** Per pool: a minimum spacing between remediation starts. */
export function poolSpacingBlock (node: NodeView, lastStart: number | undefined, now: number, config: PolicyConfig): Block | undefined {
  if (lastStart === undefined || now - lastStart >= config.poolSpacingMs) return undefined
  return { rule: 'cooldown', reason: `pool ${node.pool} started a remediation at ${iso(lastStart)}; next allowed at ${iso(lastStart + config.poolSpacingMs)}` }
}
