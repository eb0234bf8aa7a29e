import type { NodeAlert } from '../alerts/node-alert.ts'
import type { NodeView } from '../remediation/snapshot.ts'
import { iso } from '../time.ts'
import type { Block, PolicyConfig } from './config.ts'

/** Go's zero time and anything near it is "no start time", never "firing for 2,000 years". */
const earliestStart = Date.parse('1001-01-01T00:00:00Z')

/**
 * Fail-open validation: an alert that is incomplete or doubtful never leads to action.
 * Returns the reason it is ignored, or undefined when it may proceed.
 */
export function validateAlert (alert: NodeAlert, node: NodeView | undefined, now: number, config: PolicyConfig): Block | undefined {
  const ignore = (reason: string): Block => ({ rule: 'validation', reason })
  if (alert.node === undefined) return ignore(`no node label (looked for ${config.nodeLabels.join(', ')})`)
  if (alert.optIn === undefined) return ignore(`not opted in: label ${config.optInLabel} is missing`)
  if (!Object.hasOwn(config.optInActions, alert.optIn)) {
    return ignore(`not opted in: ${config.optInLabel}="${alert.optIn}" is not one of ${Object.keys(config.optInActions).join(', ')}`)
  }
  if (node === undefined) return ignore(`node ${alert.node} is not in the cluster`)
  if (node.recordError !== undefined) return ignore(`node ${alert.node} has an unreadable state annotation (${node.recordError}); fix or remove it`)
  if (Number.isNaN(alert.startsAt) || alert.startsAt < earliestStart) return ignore('startsAt is not a start time')
  if (alert.status === 'resolved') return undefined
  if (alert.endsAt !== null && alert.endsAt <= now) return ignore(`alert already ended at ${iso(alert.endsAt)}`)
  if (alert.startsAt > now + config.clockSkewMs) {
    return ignore(`startsAt ${iso(alert.startsAt)} is in the future beyond the allowed clock skew`)
  }
  return undefined
}
