import { Type } from 'typebox'
import { phases } from '../remediation/record.ts'

/** Response and request shapes: one source of truth for validation, types and the OpenAPI document. */
export const ErrorBody = Type.Object({ statusCode: Type.Integer(), error: Type.String(), message: Type.String() })

export const DecisionBody = Type.Object({
  node: Type.Union([Type.String(), Type.Null()]),
  alertname: Type.String(),
  fingerprint: Type.String(),
  action: Type.Union([Type.Literal('remediate'), Type.Literal('ignored'), Type.Literal('deferred'), Type.Literal('cancelled')]),
  reason: Type.String(),
  rule: Type.Optional(Type.String())
})

export const DecisionsBody = Type.Object({
  dryRun: Type.Boolean(),
  truncatedAlerts: Type.Integer(),
  decisions: Type.Array(DecisionBody)
})

export const FaultRequest = Type.Object({
  node: Type.String({ minLength: 1, maxLength: 253 }),
  signal: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z_][A-Za-z0-9_]*$', description: 'alertname of the synthetic alert' })),
  reason: Type.Optional(Type.String({ maxLength: 1000 })),
  dryRun: Type.Optional(Type.Boolean())
}, { additionalProperties: false })

const nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()])

export const TransitionBody = Type.Object({ from: Type.String(), to: Type.String(), at: Type.String(), reason: Type.String() })

export const NodeStatusBody = Type.Object({
  name: Type.String(),
  pool: Type.String(),
  zone: Type.String(),
  unschedulable: Type.Boolean(),
  phase: Type.Enum(phases),
  since: nullable(Type.String()),
  reason: Type.String(),
  alert: Type.Union([Type.Object({
    alertname: Type.String(),
    fingerprint: Type.String(),
    startsAt: Type.String(),
    status: Type.String(),
    action: Type.String(),
    summary: Type.Optional(Type.String()),
    source: Type.String()
  }), Type.Null()]),
  deferred: Type.Union([Type.Object({ rule: Type.String(), reason: Type.String(), scope: Type.Optional(Type.String()) }), Type.Null()]),
  cooldownUntil: nullable(Type.String()),
  drainDeadline: nullable(Type.String()),
  outcome: nullable(Type.String()),
  transitions: Type.Array(TransitionBody)
})
