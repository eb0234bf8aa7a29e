import type { NodeAlert } from '../alerts/node-alert.ts'
import type { NodeView } from '../remediation/snapshot.ts'
import { iso } from '../time.ts'
import type { Block, PolicyConfig } from './config.ts'

/**
 * Fail-open validation: an alert that is incomplete or doubtful never leads to action.
 * Returns the reason it is ignored, or undefined when it may proceed.
 */
export function validateFiring (alert: NodeAlert, node: NodeView | undefined, now: number, config: PolicyConfig): Block | undefined {
  const ignore = (reason: string): Block => ({ rule: 'validation', reason })
  if (alert.node === undefined) return ignore(`no node label (looked for ${config.nodeLabels.join(', ')})`)
  if (alert.optIn === undefined) return ignore(`not opted in: label ${config.optInLabel} is missing`)
  if (!Object.hasOwn(config.optInActions, alert.optIn)) {
    return ignore(`not opted in: ${config.optInLabel}="${alert.optIn}" is not one of ${Object.keys(config.optInActions).join(', ')}`)
  }
  if (node === undefined) return ignore(`node ${alert.node} is not in the cluster`)
  if (node.recordError !== undefined) return ignore(`node ${alert.node} has an unreadable state annotation (${node.recordError}); fix or remove it`)
  if (Number.isNaN(alert.startsAt)) return ignore('startsAt is not a time')
  if (alert.endsAt !== null && alert.endsAt <= now) return ignore(`alert already ended at ${iso(alert.endsAt)}`)
  if (alert.startsAt > now + config.clockSkewMs) {
    return ignore(`startsAt ${iso(alert.startsAt)} is in the future beyond the allowed clock skew`)
  }
  const tracked = node.record?.alert
  if (tracked !== undefined && tracked.fingerprint === alert.fingerprint && tracked.startsAt === alert.startsAtIso) {
    return ignore(tracked.status === 'firing'
      ? `duplicate: alert ${alert.fingerprint} is already handled`
      : `duplicate: alert ${alert.fingerprint} already resolved (notification out of order)`)
  }
  return undefined
}
