import { Type, type Static } from 'typebox'

/**
 * Label and annotation maps. Written as additionalProperties rather than Type.Record, whose
 * `patternProperties: {"^.*$": …}` makes the validator run a regular expression per label on
 * every webhook for no check at all.
 */
const StringMap = Type.Unsafe<Record<string, string>>({ type: 'object', additionalProperties: { type: 'string' } })

/**
 * Alertmanager webhook payload, version 4. Unknown fields are accepted: newer Alertmanagers add
 * some (notification_reason, routeLabels) and rejecting them would lose alerts for good, since
 * Alertmanager does not retry a 4xx.
 */
export const WebhookAlert = Type.Object({
  status: Type.Union([Type.Literal('firing'), Type.Literal('resolved')]),
  labels: StringMap,
  annotations: Type.Optional(StringMap),
  startsAt: Type.String({ format: 'date-time' }),
  endsAt: Type.Optional(Type.String({ format: 'date-time' })),
  generatorURL: Type.Optional(Type.String()),
  fingerprint: Type.String({ minLength: 1, maxLength: 128 })
})
export type WebhookAlert = Static<typeof WebhookAlert>

export const WebhookPayload = Type.Object({
  version: Type.Literal('4'),
  status: Type.Union([Type.Literal('firing'), Type.Literal('resolved')]),
  receiver: Type.Optional(Type.String()),
  groupKey: Type.Optional(Type.String()),
  truncatedAlerts: Type.Optional(Type.Integer({ minimum: 0 })),
  groupLabels: Type.Optional(StringMap),
  commonLabels: Type.Optional(StringMap),
  commonAnnotations: Type.Optional(StringMap),
  externalURL: Type.Optional(Type.String()),
  alerts: Type.Array(WebhookAlert)
})
export type WebhookPayload = Static<typeof WebhookPayload>
