import { Type, type Static } from 'typebox'

/**
 * Alertmanager webhook payload, version 4. Unknown fields are accepted: newer Alertmanagers add
 * some (notification_reason, routeLabels) and rejecting them would lose alerts for good, since
 * Alertmanager does not retry a 4xx.
 */
export const WebhookAlert = Type.Object({
  status: Type.Union([Type.Literal('firing'), Type.Literal('resolved')]),
  labels: Type.Record(Type.String(), Type.String()),
  annotations: Type.Optional(Type.Record(Type.String(), Type.String())),
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
  groupLabels: Type.Optional(Type.Record(Type.String(), Type.String())),
  commonLabels: Type.Optional(Type.Record(Type.String(), Type.String())),
  commonAnnotations: Type.Optional(Type.Record(Type.String(), Type.String())),
  externalURL: Type.Optional(Type.String()),
  alerts: Type.Array(WebhookAlert)
})
export type WebhookPayload = Static<typeof WebhookPayload>
