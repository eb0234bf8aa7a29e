import type { NodeRecord, RequestedAction, RungAction } from '../remediation/record.ts'
import { parseTime } from '../time.ts'
import type { PolicyConfig } from './config.ts'

/**
 * The escalation ladder: remediation="drain" means REMEDIATION_LADDER (default reboot, then
 * replace), rung by rung, for repeat remediations of the same node within LADDER_WINDOW. Past the
 * last rung the node is quarantined: drained, cordoned and held for a person. An explicit
 * reboot/replace label still means exactly that action.
 */

/** Remediations started within the ladder window. */
export function recentRemediations (record: NodeRecord, now: number, config: Pick<PolicyConfig, 'ladderWindowMs'>): NodeRecord['remediations'] {
  return record.remediations.filter(r => parseTime(r.at) > now - config.ladderWindowMs)
}

export function rungFor (record: NodeRecord, requested: RequestedAction, now: number, config: Pick<PolicyConfig, 'ladder' | 'ladderWindowMs'>): RungAction {
  if (requested !== 'ladder') return requested
  return config.ladder[recentRemediations(record, now, config).length] ?? 'quarantine'
}
