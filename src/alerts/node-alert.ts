import { iso, parseTime } from '../time.ts'
import type { WebhookAlert } from './webhook.ts'

/** One alert as the decision core sees it: times parsed, node and opt-in labels looked up. */
export type NodeAlert = {
  node: string | undefined
  alertname: string
  fingerprint: string
  status: 'firing' | 'resolved'
  startsAt: number
  /** startsAt normalised to ISO-8601: with the fingerprint, the identity of one firing episode. */
  startsAtIso: string
  /** null when Alertmanager sent Go's zero time, which means "no end". */
  endsAt: number | null
  /** Value of the opt-in label, if present. */
  optIn: string | undefined
  summary: string | undefined
  source: 'alertmanager' | 'fault'
}

export type LabelConfig = {
  /** Label names that may carry the node name, in order of preference. */
  nodeLabels: readonly string[]
  optInLabel: string
}

const goZeroTime = '0001-01-01'

export function toNodeAlert (alert: WebhookAlert, labels: LabelConfig, source: NodeAlert['source'] = 'alertmanager'): NodeAlert {
  let node: string | undefined
  for (const name of labels.nodeLabels) {
    const value = alert.labels[name]
    if (value !== undefined && value !== '') { node = value; break }
  }
  const startsAt = parseTime(alert.startsAt)
  const endsAt = alert.endsAt === undefined || alert.endsAt.startsWith(goZeroTime) ? null : parseTime(alert.endsAt)
  return {
    node,
    alertname: alert.labels.alertname ?? '(unnamed)',
    fingerprint: alert.fingerprint,
    status: alert.status,
    startsAt,
    startsAtIso: Number.isNaN(startsAt) ? '' : iso(startsAt),
    endsAt,
    optIn: alert.labels[labels.optInLabel],
    summary: alert.annotations?.summary,
    source
  }
}
