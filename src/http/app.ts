import { createHash } from 'node:crypto'
import swagger from '@fastify/swagger'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifySchemaValidationError, type FastifyServerOptions } from 'fastify'
import { Type } from 'typebox'
import { isTimestamp, startTimeKeyword, WebhookPayload, type WebhookAlert } from '../alerts/webhook.ts'
import { isClusterError } from '../cluster.ts'
import type { Credentials } from '../config.ts'
import type { Metrics } from '../metrics.ts'
import type { PolicyConfig } from '../policy/config.ts'
import type { Engine } from '../remediation/engine.ts'
import { iso } from '../time.ts'
import { admitLargeBodies } from './admission.ts'
import { requireBearer } from './auth.ts'
import { countRequests } from './request-metrics.ts'
import { parseDuration } from '../duration.ts'
import { BudgetBody, DecisionsBody, ErrorBody, FaultBody, FaultRequest, NodeStatusBody, PauseRequest, PauseStatusBody } from './schemas.ts'

export type AppOptions = {
  engine: Engine
  metrics: Metrics
  policy: PolicyConfig
  /** undefined tokens mean authentication is off (logged at start). */
  credentials: Credentials | undefined
  faultsEnabled: boolean
  dryRun: boolean
  bodyLimit: number
  /** Cluster reachable and persisted state recovered. */
  ready: () => Promise<{ ready: boolean, reason: string }>
  now?: () => number
}

/**
 * Fastify's wording (`body/alerts/0/startsAt must match format "date-time"`), plus the name of an
 * unknown field, which Ajv's "must NOT have additional properties" leaves out.
 */
function describeSchemaErrors (errors: FastifySchemaValidationError[], dataVar: string): Error {
  return new Error(errors.map(e => e.keyword === 'additionalProperties'
    ? `${dataVar}${e.instancePath}/${String(e.params.additionalProperty)} is not a known field`
    : `${dataVar}${e.instancePath} ${e.message}`).join(', '))
}

const maxFaultTtlMs = 7 * 24 * 3_600_000
const faultFingerprint = (node: string, signal: string) => createHash('sha256').update(`fault\0${node}\0${signal}`).digest('hex').slice(0, 16)

const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 413: ErrorBody, 415: ErrorBody, 503: ErrorBody }

/** The HTTP surface as a Fastify plugin: tests register it and drive it with inject; server.ts listens. */
export async function app (fastify: FastifyInstance, options: AppOptions): Promise<void> {
  const api = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const now = options.now ?? Date.now
  const { engine, metrics, policy } = options
  const open = options.credentials === undefined
  const webhookAuth = requireBearer(open ? undefined : [options.credentials!.webhook!].filter(Boolean))
  const faultAuth = requireBearer(open ? undefined : [options.credentials!.faults].filter(t => t !== undefined))
  const readAuth = requireBearer(open ? undefined : [options.credentials!.webhook, options.credentials!.faults, options.credentials!.admin].filter(t => t !== undefined))
  // The operator's brakes need their own credential: neither Alertmanager's nor a game day's token may lift a pause.
  const adminAuth = requireBearer(open ? undefined : [options.credentials!.admin].filter(t => t !== undefined))
  // Large webhook bodies read, parsed and decided at once: two at the limit, or 8 MiB of smaller ones.
  const admitBody = admitLargeBodies({ bodyLimit: options.bodyLimit, budget: Math.max(2 * options.bodyLimit, 8 * 1024 * 1024) })

  // First, so that every route below is counted.
  countRequests(fastify, metrics.registry)

  // Only JSON is accepted: anything else is a 415, not a 400 about a string body.
  fastify.removeContentTypeParser('text/plain')

  await fastify.register(swagger, {
    openapi: {
      info: { title: 'Self-Healing Controller', version: '0.1.0', description: 'Alertmanager webhook in; paced, explained node remediation out.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } }
    }
  })

  fastify.setSchemaErrorFormatter(describeSchemaErrors)
  fastify.setErrorHandler((err: FastifyError, request, reply) => {
    if (isClusterError(err, 'unavailable')) {
      // 5xx so that Alertmanager retries: nothing was decided, nothing was lost.
      return reply.code(503).header('retry-after', '10').send({ statusCode: 503, error: 'Service Unavailable', message: `cannot decide now: ${err.message}` })
    }
    const status = err.statusCode ?? 500
    if (status >= 500) request.log.error({ err }, 'request failed')
    return reply.code(status).send({ statusCode: status, error: status >= 500 ? 'Internal Server Error' : err.code ?? 'Error', message: err.message })
  })

  api.post('/v1/alerts', {
    bodyLimit: options.bodyLimit,
    onRequest: [webhookAuth, admitBody],
    schema: {
      summary: 'Alertmanager webhook (payload version 4)',
      security: [{ bearer: [] }],
      body: WebhookPayload,
      response: { 202: DecisionsBody, ...errors }
    }
  }, async (request, reply) => {
    const { alerts, truncatedAlerts, groupKey } = request.body
    // Under DRY_RUN the engine runs on its shadow cluster and persists there: the intake is a real
    // one, so that repeats, the semaphore and the breaker see earlier notifications.
    const decisions = await engine.intake(alerts, 'alertmanager', false, { truncatedAlerts: truncatedAlerts ?? 0, ...(groupKey === undefined ? {} : { groupKey }) })
    const truncated = request.body.truncatedAlerts ?? 0
    if (truncated > 0) request.log.warn({ truncated, groupKey: request.body.groupKey }, 'Alertmanager truncated this notification (max_alerts); the cut alerts were not seen')
    return reply.code(202).send({ dryRun: options.dryRun, truncatedAlerts: truncated, decisions })
  })

  api.post('/v1/faults', {
    onRequest: faultAuth,
    schema: {
      summary: 'Inject a fault by hand: a synthetic firing alert through the same pipeline and safety rules',
      security: [{ bearer: [] }],
      body: FaultRequest,
      response: { 202: DecisionsBody, ...errors }
    }
  }, async (request, reply) => {
    if (!options.faultsEnabled) return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'fault injection is disabled (set FAULTS_ENABLED=true)' })
    const { node, signal = 'ManualFault', reason, dryRun = false, ttl = '1h' } = request.body
    const ttlMs = parseDuration(ttl)!
    if (ttlMs <= 0 || ttlMs > maxFaultTtlMs) return reply.code(400).send({ statusCode: 400, error: 'Bad Request', message: `body/ttl must be more than 0 and at most 7d (got ${ttl})` })
    const at = now()
    // An injected fault ends by itself: nobody sends its resolve.
    const alert: WebhookAlert = {
      status: 'firing',
      labels: { alertname: signal, [policy.nodeLabels[0]!]: node, [policy.optInLabel]: 'drain', injected: 'true' },
      annotations: { summary: reason ?? `fault injected by hand on ${node}` },
      startsAt: iso(at),
      endsAt: iso(at + ttlMs),
      fingerprint: faultFingerprint(node, signal)
    }
    // A fault's own dryRun is a preview: decided, nothing recorded, even on the shadow.
    const decisions = await engine.intake([alert], 'fault', dryRun)
    return reply.code(202).send({ dryRun: dryRun || options.dryRun, truncatedAlerts: 0, decisions })
  })

  api.get('/v1/faults', {
    onRequest: faultAuth,
    schema: { summary: 'Faults injected by hand that still fire', security: [{ bearer: [] }], response: { 200: Type.Object({ faults: Type.Array(FaultBody) }), ...errors } }
  }, async (request, reply) => {
    if (!options.faultsEnabled) return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'fault injection is disabled (set FAULTS_ENABLED=true)' })
    return { faults: await engine.faults() }
  })

  api.delete('/v1/faults/:node', {
    onRequest: faultAuth,
    schema: {
      summary: 'End the faults injected on a node: they resolve, through the same pipeline',
      security: [{ bearer: [] }],
      params: Type.Object({ node: Type.String({ minLength: 1, maxLength: 253 }) }),
      response: { 200: DecisionsBody, ...errors }
    }
  }, async (request, reply) => {
    if (!options.faultsEnabled) return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'fault injection is disabled (set FAULTS_ENABLED=true)' })
    const live = (await engine.faults()).filter(f => f.node === request.params.node)
    if (live.length === 0) return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no injected fault fires on node ${request.params.node}` })
    const at = iso(now())
    const resolved: WebhookAlert[] = live.map(f => ({
      status: 'resolved',
      labels: { alertname: f.alertname, [policy.nodeLabels[0]!]: f.node, [policy.optInLabel]: 'drain', injected: 'true' },
      startsAt: f.startsAt,
      endsAt: at,
      fingerprint: f.fingerprint
    }))
    const decisions = await engine.intake(resolved, 'fault', false)
    return reply.code(200).send({ dryRun: options.dryRun, truncatedAlerts: 0, decisions })
  })

  api.get('/v1/nodes', {
    onRequest: readAuth,
    schema: { summary: 'Every tracked node\'s remediation state', security: [{ bearer: [] }], response: { 200: Type.Object({ nodes: Type.Array(NodeStatusBody) }), ...errors } }
  }, async () => ({ nodes: await engine.nodes() }))

  api.get('/v1/pause', {
    onRequest: readAuth,
    schema: { summary: 'The pauses in force and the maintenance windows', security: [{ bearer: [] }], response: { 200: PauseStatusBody, ...errors } }
  }, async () => await engine.pauses())

  for (const scope of ['cluster', 'pool'] as const) {
    const url = scope === 'cluster' ? '/v1/pause/cluster' : '/v1/pause/pool/:pool'
    const params = Type.Object(scope === 'cluster' ? {} : { pool: Type.String({ minLength: 1, maxLength: 63 }) })
    api.put(url, {
      onRequest: adminAuth,
      schema: { summary: `Pause new remediation ${scope === 'cluster' ? 'cluster-wide' : 'in one pool'} (work under way goes on to its next safe point)`, security: [{ bearer: [] }], params, body: PauseRequest, response: { 200: PauseStatusBody, ...errors } }
    }, async (request, reply) => {
      const { reason, until, by } = request.body
      if (until !== undefined && Date.parse(until) <= now()) return reply.code(400).send({ statusCode: 400, error: 'Bad Request', message: `body/until must be in the future (got ${until})` })
      const pool = (request.params as { pool?: string }).pool
      await engine.setPause(pool, { reason, by: by ?? 'admin API', at: iso(now()), ...(until === undefined ? {} : { until: iso(Date.parse(until)) }) })
      return await engine.pauses()
    })
    api.delete(url, {
      onRequest: adminAuth,
      schema: { summary: `Lift the ${scope === 'cluster' ? 'cluster-wide' : 'pool\'s'} pause`, security: [{ bearer: [] }], params, response: { 200: PauseStatusBody, ...errors } }
    }, async request => {
      await engine.setPause((request.params as { pool?: string }).pool, undefined)
      return await engine.pauses()
    })
  }

  api.get('/v1/budget', {
    onRequest: readAuth,
    schema: { summary: 'Per pool and zone: size, out of service (ours and others\', by cause), budget, breakers; departed nodes', security: [{ bearer: [] }], response: { 200: BudgetBody, ...errors } }
  }, async () => await engine.budget())

  api.delete('/v1/budget/departed/:node', {
    onRequest: adminAuth,
    schema: { summary: 'Free the slot of a departed node whose pool was not made whole by REPLACE_TIMEOUT', security: [{ bearer: [] }], params: Type.Object({ node: Type.String({ minLength: 1, maxLength: 253 }) }), response: { 200: BudgetBody, ...errors, 409: ErrorBody } }
  }, async (request, reply) => {
    const outcome = await engine.releaseDeparted(request.params.node)
    if (!outcome.released) {
      const [statusCode, error] = outcome.refused === 'not-found' ? [404, 'Not Found'] : [409, 'Conflict']
      return reply.code(statusCode).send({ statusCode, error, message: outcome.reason })
    }
    return await engine.budget()
  })

  api.get('/v1/nodes/:name', {
    onRequest: readAuth,
    schema: { summary: 'One node\'s remediation state and recent transitions', security: [{ bearer: [] }], params: Type.Object({ name: Type.String({ maxLength: 253 }) }), response: { 200: NodeStatusBody, ...errors } }
  }, async (request, reply) => {
    const status = await engine.node(request.params.name)
    if (status === undefined) return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `node ${request.params.name} is not in the cluster` })
    return status
  })

  api.get('/healthz', { schema: { summary: 'The process is alive' } }, async () => ({ status: 'ok' }))

  api.get('/readyz', { schema: { summary: 'Cluster reachable and persisted state recovered' } }, async (request, reply) => {
    const state = await options.ready().catch(err => ({ ready: false, reason: (err as Error).message }))
    return reply.code(state.ready ? 200 : 503).send({ status: state.ready ? 'ready' : 'not ready', reason: state.reason })
  })

  api.get('/metrics', { schema: { summary: 'Prometheus metrics' } }, async (request, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })

  api.get('/openapi.json', { schema: { hide: true } }, async () => fastify.swagger())
}

/** A Fastify instance with the app registered; what server.ts listens with and tests inject into. */
export async function buildApp (options: AppOptions, server: FastifyServerOptions = {}): Promise<FastifyInstance> {
  // Probes and scrapes come every few seconds; logging them would drown the decisions.
  const quiet = new Set(['/healthz', '/readyz', '/metrics'])
  const logController = new LogController({ disableRequestLogging: request => quiet.has(request.url) })
  const fastify = Fastify({
    logController,
    ajv: {
      // Input is taken as typed. Fastify's defaults coerce (`coerceTypes: 'array'` read
      // `remediation: ["drain"]` as "drain" and a fault's `dryRun: 0` as false) and silently drop
      // the fields a closed schema does not name (a misspelt `dryrun` vanished and the fault ran
      // for real). Without coercion, params and querystrings are strings: declare them so.
      customOptions: { coerceTypes: false, removeAdditional: false },
      // date-time: the calendar-exact check of the webhook schema, in place of ajv-formats'.
      onCreate: ajv => { ajv.addFormat('date-time', isTimestamp).addKeyword(startTimeKeyword) }
    },
    ...server
  })
  await fastify.register(app, options)
  return fastify
}
