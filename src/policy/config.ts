import type { LabelConfig } from '../alerts/node-alert.ts'
import type { ProviderAction } from '../providers/provider.ts'
import type { RequestedAction } from '../remediation/record.ts'
import type { BudgetSpec, DisruptorTaint } from './budget.ts'

/** Everything the pure decision core needs to know about the operator's choices. */
export type PolicyConfig = LabelConfig & {
  /** Opt-in label value → what the alert asks for. Other values are not opted in. */
  optInActions: Readonly<Record<string, RequestedAction>>
  /** What remediation="drain" means, rung by rung, for repeat remediations of one node. */
  ladder: readonly ProviderAction[]
  ladderWindowMs: number
  clockSkewMs: number
  minFiringAgeMs: number
  flapWindowMs: number
  flapMaxRefires: number
  cooldownMs: number
  poolSpacingMs: number
  poolLabel: string
  zoneLabel: string
  breakerThreshold: number
  breakerMinNodes: number
  breakerSettleMs: number
  stormSettleMs: number
  maxConcurrentDrains: number
  poolMaxUnavailable: BudgetSpec
  disruptorTaints: readonly DisruptorTaint[]
  drainTimeoutMs: number
  rebootTimeoutMs: number
  replaceTimeoutMs: number
  verifyDwellMs: number
  alertTtlMs: number
}

/** The safety rules, named as in metrics, logs and API answers. */
export const ruleNames = [
  'validation', 'disrupted-elsewhere', 'veto', 'hysteresis', 'cooldown', 'paused', 'window', 'truncated',
  'storm-settle', 'circuit-breaker', 'slow-start', 'spacing', 'budget', 'semaphore',
  'recheck', 'protected-pods', 'capacity'
] as const
export type RuleName = typeof ruleNames[number]

/**
 * Why a rule stopped something: always said to the operator. `reason` is stable text (it is
 * persisted, and rewriting it every pass would be a write per pass); the numbers that change go
 * in `detail`, shown in answers but never persisted. `until` is when the block may lift by itself,
 * so the engine wakes up then.
 */
export type Block = { rule: RuleName, reason: string, scope?: string, detail?: Readonly<Record<string, string | number>>, until?: number }
export type PersistedBlock = Pick<Block, 'rule' | 'reason' | 'scope'>

export function persisted (block: Block): PersistedBlock {
  return block.scope === undefined ? { rule: block.rule, reason: block.reason } : { rule: block.rule, reason: block.reason, scope: block.scope }
}
