import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { ruleNames } from './policy/config.ts'
import { phases, type Phase } from './remediation/record.ts'

/**
 * What the fleet gauges show, read from the engine's fleet index at scrape time: computing them
 * on every change would cost a walk over the fleet per node write; a scrape every 30 s costs one.
 */
export type FleetReading = {
  /** Per phase: how many nodes, and since when the oldest has been in it (epoch ms). */
  phases: ReadonlyMap<Phase, { count: number, oldestSince: number }>
  slotsHeld: number
  departed: number
  scopes: ReadonlyArray<{ scope: string, pool: string, zone?: string, size: number, budget: number, ours: number, others: number, breakerOpen: boolean, exhausted: boolean }>
  pauses: ReadonlyArray<{ scope: string }>
}

/** Every metric the service exposes, on its own registry so that tests can build many apps. */
export function createMetrics () {
  const registry = new Registry()
  // prom-client's default metrics include gauges ending in _total, which promtool rejects; these
  // few process gauges are the ones worth having.
  const startTime = Math.round(Date.now() / 1000)
  new Gauge({ name: 'shc_process_start_time_seconds', help: 'Start time of the process since the Unix epoch.', registers: [registry], collect () { this.set(startTime) } })
  new Gauge({ name: 'shc_process_resident_memory_bytes', help: 'Resident memory of the process.', registers: [registry], collect () { this.set(process.memoryUsage.rss()) } })
  new Gauge({ name: 'shc_process_heap_used_bytes', help: 'V8 heap in use.', registers: [registry], collect () { this.set(process.memoryUsage().heapUsed) } })

  let read: (() => FleetReading) | undefined
  let phaseTimeouts: ReadonlyMap<Phase, number> = new Map()
  const reading = () => read?.()
  // Gauges filled from one reading per scrape: the first collect of a scrape reads, the rest reuse it.
  let cached: { at: number, value: FleetReading | undefined } | undefined
  const current = () => {
    const at = Date.now()
    if (cached === undefined || at - cached.at > 500) cached = { at, value: reading() }
    return cached.value
  }
  const fleetGauge = <L extends string>(name: string, help: string, labelNames: readonly L[], fill: (gauge: Gauge<L>, value: FleetReading) => void) =>
    new Gauge<L>({ name, help, labelNames, registers: [registry], collect () { const value = current(); if (value !== undefined) { this.reset(); fill(this, value) } } })

  const metrics = {
    registry,
    alertsReceived: new Counter({ name: 'shc_alerts_received_total', help: 'Alerts received, by source and status.', labelNames: ['source', 'status'] as const, registers: [registry] }),
    decisions: new Counter({ name: 'shc_decisions_total', help: 'Decisions taken on received alerts, by action.', labelNames: ['action'] as const, registers: [registry] }),
    blocked: new Counter({ name: 'shc_policy_blocked_total', help: 'Alerts or pending remediations held back, by the safety rule that blocked them.', labelNames: ['rule'] as const, registers: [registry] }),
    transitions: new Counter({ name: 'shc_transitions_total', help: 'Remediation state transitions, by source and target phase.', labelNames: ['from', 'to'] as const, registers: [registry] }),
    evictions: new Counter({ name: 'shc_evictions_total', help: 'Eviction requests, by result.', labelNames: ['result'] as const, registers: [registry] }),
    drainSeconds: new Histogram({ name: 'shc_drain_duration_seconds', help: 'Wall time of node drains, by outcome.', labelNames: ['outcome'] as const, buckets: [5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600], registers: [registry] }),
    providerCalls: new Counter({ name: 'shc_provider_calls_total', help: 'Provider remediation calls, by provider, action and result.', labelNames: ['provider', 'action', 'result'] as const, registers: [registry] }),
    dryRun: new Gauge({ name: 'shc_dry_run', help: '1 when the service only reports decisions and mutates nothing.', registers: [registry] }),
    leader: new Gauge({ name: 'shc_leader', help: '1 while this replica holds the leadership and acts.', registers: [registry] }),
    sourceUp: new Gauge({ name: 'shc_source_up', help: '1 when the last recheck against a source of alert truth (prometheus, alertmanager) succeeded, 0 when it failed.', labelNames: ['source'] as const, registers: [registry] }),
    /** The fleet gauges read `source` at scrape time; `timeouts` says how long each phase may last. */
    bindFleet (source: () => FleetReading, timeouts: ReadonlyMap<Phase, number>) {
      read = source
      phaseTimeouts = timeouts
    }
  }
  fleetGauge('shc_nodes', 'Tracked nodes by remediation phase.', ['phase'], (gauge, value) => {
    for (const phase of phases) gauge.set({ phase }, value.phases.get(phase)?.count ?? 0)
  })
  fleetGauge('shc_oldest_in_phase_seconds', 'How long the node longest in each phase has been in it.', ['phase'], (gauge, value) => {
    const at = Date.now()
    for (const [phase, { oldestSince }] of value.phases) gauge.set({ phase }, Math.max(0, (at - oldestSince) / 1000))
  })
  new Gauge({
    name: 'shc_phase_timeout_seconds',
    help: 'How long a node may stay in a phase before something is wrong (the deadline that phase runs against, plus headroom).',
    labelNames: ['phase'] as const,
    registers: [registry],
    collect () { for (const [phase, ms] of phaseTimeouts) this.set({ phase }, ms / 1000) }
  })
  fleetGauge('shc_drains_in_flight', 'Our slots in use (MAX_CONCURRENT_DRAINS): nodes held out of service or being verified, and departed nodes not yet replaced.', [], (gauge, value) => { gauge.set(value.slotsHeld) })
  fleetGauge('shc_departed_nodes', 'Nodes that left the cluster while held and whose pool is not whole again.', [], (gauge, value) => { gauge.set(value.departed) })
  fleetGauge('shc_circuit_breaker_open', '1 while the circuit breaker of a pool or pool/zone scope is open.', ['scope'], (gauge, value) => {
    for (const scope of value.scopes) gauge.set({ scope: scope.scope }, scope.breakerOpen ? 1 : 0)
  })
  fleetGauge('shc_budget_size', 'Nodes in a pool (departed ones included until replaced).', ['pool'], (gauge, value) => {
    for (const scope of value.scopes) if (scope.zone === undefined) gauge.set({ pool: scope.pool }, scope.size)
  })
  fleetGauge('shc_budget_allowed', 'Nodes a pool may have out of service (POOL_MAX_UNAVAILABLE).', ['pool'], (gauge, value) => {
    for (const scope of value.scopes) if (scope.zone === undefined) gauge.set({ pool: scope.pool }, scope.budget)
  })
  fleetGauge('shc_budget_out_of_service', 'Nodes of a pool out of service, by whom: us or others.', ['pool', 'by'], (gauge, value) => {
    for (const scope of value.scopes) {
      if (scope.zone !== undefined) continue
      gauge.set({ pool: scope.pool, by: 'us' }, scope.ours)
      gauge.set({ pool: scope.pool, by: 'others' }, scope.others)
    }
  })
  fleetGauge('shc_budget_exhausted', '1 while a pool (or a zone of it) has no disruption budget left for one more node.', ['pool'], (gauge, value) => {
    const exhausted = new Map<string, boolean>()
    for (const scope of value.scopes) exhausted.set(scope.pool, (exhausted.get(scope.pool) ?? false) || scope.exhausted)
    for (const [pool, full] of exhausted) gauge.set({ pool }, full ? 1 : 0)
  })
  fleetGauge('shc_pause_active', '1 while remediation is paused, cluster-wide (scope="cluster") or for a pool (scope="pool=NAME").', ['scope'], (gauge, value) => {
    for (const pause of value.pauses) gauge.set({ scope: pause.scope }, 1)
  })
  // Zero-initialise the label sets operators alert on, so that rate() works from the first scrape.
  for (const rule of ruleNames) metrics.blocked.inc({ rule }, 0)
  return metrics
}

export type Metrics = ReturnType<typeof createMetrics>
