import { Type } from 'typebox'
import { phases } from '../remediation/record.ts'

/** Response and request shapes: one source of truth for validation, types and the OpenAPI document. */
export const ErrorBody = Type.Object({ statusCode: Type.Integer(), error: Type.String(), message: Type.String() })

/** A blocking rule's numbers: they change from one decision to the next, so they are shown, never persisted. */
const Detail = Type.Record(Type.String(), Type.Union([Type.String(), Type.Number()]))

export const DecisionBody = Type.Object({
  node: Type.Union([Type.String(), Type.Null()]),
  alertname: Type.String(),
  fingerprint: Type.String(),
  action: Type.Union([Type.Literal('remediate'), Type.Literal('ignored'), Type.Literal('deferred'), Type.Literal('cancelled')]),
  reason: Type.String(),
  rule: Type.Optional(Type.String()),
  detail: Type.Optional(Detail)
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
  dryRun: Type.Optional(Type.Boolean()),
  ttl: Type.Optional(Type.String({ pattern: '^(\\d+(ms|s|m|h|d))+$', maxLength: 32, description: 'how long the fault fires unless ended (DELETE /v1/faults/{node}); default 1h' }))
}, { additionalProperties: false })

export const FaultBody = Type.Object({ node: Type.String(), alertname: Type.String(), fingerprint: Type.String(), startsAt: Type.String(), endsAt: Type.String(), summary: Type.Optional(Type.String()) })

const nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()])

export const TransitionBody = Type.Object({ from: Type.String(), to: Type.String(), at: Type.String(), reason: Type.String() })

const AlertBody = Type.Object({
  alertname: Type.String(),
  fingerprint: Type.String(),
  startsAt: Type.String(),
  status: Type.String(),
  action: Type.String(),
  summary: Type.Optional(Type.String()),
  source: Type.String(),
  receivedAt: Type.String(),
  lastSeen: Type.String(),
  endedAt: Type.Optional(Type.String()),
  endsAt: Type.Optional(Type.String())
})

export const NodeStatusBody = Type.Object({
  name: Type.String(),
  uid: Type.String(),
  pool: Type.String(),
  zone: Type.String(),
  unschedulable: Type.Boolean(),
  phase: Type.Enum(phases),
  since: nullable(Type.String()),
  reason: Type.String(),
  alert: Type.Union([AlertBody, Type.Null()]),
  alerts: Type.Array(AlertBody),
  deferred: Type.Union([Type.Object({ rule: Type.String(), reason: Type.String(), scope: Type.Optional(Type.String()), detail: Type.Optional(Detail) }), Type.Null()]),
  outOfService: Type.Union([Type.Object({ cause: Type.String(), by: Type.Union([Type.Literal('us'), Type.Literal('others')]) }), Type.Null()]),
  veto: Type.Union([Type.Object({ reason: Type.String(), until: Type.Optional(Type.String()) }), Type.Null()]),
  cooldownUntil: nullable(Type.String()),
  drainDeadline: nullable(Type.String()),
  outcome: nullable(Type.String()),
  transitions: Type.Array(TransitionBody)
})

const OutOfServiceBody = Type.Object({ ours: Type.Integer(), others: Type.Integer(), causes: Type.Record(Type.String(), Type.Integer()) })

export const BudgetBody = Type.Object({
  maxConcurrentDrains: Type.Integer(),
  ours: Type.Integer({ description: 'slots held by us, cluster-wide' }),
  pools: Type.Array(Type.Object({
    pool: Type.String(),
    size: Type.Integer(),
    budget: Type.Integer(),
    outOfService: OutOfServiceBody,
    breaker: Type.Object({ open: Type.Boolean(), since: Type.Optional(Type.String()), closedAt: Type.Optional(Type.String()), proven: Type.Optional(Type.Integer()) }),
    zones: Type.Array(Type.Object({ zone: Type.String(), size: Type.Integer(), budget: Type.Integer(), outOfService: OutOfServiceBody }))
  })),
  departed: Type.Array(Type.Object({
    node: Type.String(),
    pool: Type.String(),
    zone: Type.String(),
    goneAt: Type.String(),
    expected: Type.Integer(),
    deadline: Type.String(),
    backSince: Type.Optional(Type.String()),
    failed: Type.Optional(Type.String())
  }))
})

export const PauseRequest = Type.Object({
  reason: Type.String({ minLength: 1, maxLength: 500 }),
  until: Type.Optional(Type.String({ format: 'date-time', description: 'the pause ends by itself then (RFC 3339)' })),
  by: Type.Optional(Type.String({ minLength: 1, maxLength: 120, description: 'who pauses; shown with the pause' }))
}, { additionalProperties: false })

export const PauseStatusBody = Type.Object({
  pauses: Type.Array(Type.Object({ scope: Type.Union([Type.Literal('cluster'), Type.Literal('pool')]), pool: Type.Optional(Type.String()), reason: Type.String(), by: Type.String(), at: Type.String(), until: Type.Optional(Type.String()) })),
  windows: Type.Object({ spec: Type.String(), open: Type.Boolean(), nextOpening: Type.Union([Type.String(), Type.Null()]) })
})
