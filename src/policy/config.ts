import type { LabelConfig } from '../alerts/node-alert.ts'
import type { ProviderAction } from '../providers/provider.ts'

/** Everything the pure decision core needs to know about the operator's choices. */
export type PolicyConfig = LabelConfig & {
  /** Opt-in label value → what the provider does after the drain. Other values are not opted in. */
  optInActions: Readonly<Record<string, ProviderAction>>
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
  maxConcurrentDrains: number
  drainTimeoutMs: number
  rebootTimeoutMs: number
}

/** The safety rules, named as in metrics, logs and API answers. */
export type RuleName = 'validation' | 'hysteresis' | 'cooldown' | 'circuit-breaker' | 'semaphore' | 'recheck'
export const ruleNames: readonly RuleName[] = ['validation', 'hysteresis', 'cooldown', 'circuit-breaker', 'semaphore', 'recheck']

/** Why a rule stopped something: always said to the operator. */
export type Block = { rule: RuleName, reason: string, /** breaker scope that blocked */ scope?: string }
