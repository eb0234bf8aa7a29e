import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { ruleNames } from './policy/config.ts'
import { phases } from './remediation/record.ts'

/** Every metric the service exposes, on its own registry so that tests can build many apps. */
export function createMetrics () {
  const registry = new Registry()
  // prom-client's default metrics include gauges ending in _total, which promtool rejects; these
  // few process gauges are the ones worth having.
  const startTime = Math.round(Date.now() / 1000)
  new Gauge({ name: 'shc_process_start_time_seconds', help: 'Start time of the process since the Unix epoch.', registers: [registry], collect () { this.set(startTime) } })
  new Gauge({ name: 'shc_process_resident_memory_bytes', help: 'Resident memory of the process.', registers: [registry], collect () { this.set(process.memoryUsage.rss()) } })
  new Gauge({ name: 'shc_process_heap_used_bytes', help: 'V8 heap in use.', registers: [registry], collect () { this.set(process.memoryUsage().heapUsed) } })
  const metrics = {
    registry,
    alertsReceived: new Counter({ name: 'shc_alerts_received_total', help: 'Alerts received, by source and status.', labelNames: ['source', 'status'] as const, registers: [registry] }),
    decisions: new Counter({ name: 'shc_decisions_total', help: 'Decisions taken on received alerts, by action.', labelNames: ['action'] as const, registers: [registry] }),
    blocked: new Counter({ name: 'shc_policy_blocked_total', help: 'Alerts or pending remediations held back, by the safety rule that blocked them.', labelNames: ['rule'] as const, registers: [registry] }),
    transitions: new Counter({ name: 'shc_transitions_total', help: 'Remediation state transitions, by source and target phase.', labelNames: ['from', 'to'] as const, registers: [registry] }),
    nodesInPhase: new Gauge({ name: 'shc_nodes', help: 'Tracked nodes by remediation phase.', labelNames: ['phase'] as const, registers: [registry] }),
    drainsInFlight: new Gauge({ name: 'shc_drains_in_flight', help: 'Nodes holding a drain-semaphore slot.', registers: [registry] }),
    breakerOpen: new Gauge({ name: 'shc_circuit_breaker_open', help: '1 while the circuit breaker of a pool or pool/zone scope is open.', labelNames: ['scope'] as const, registers: [registry] }),
    evictions: new Counter({ name: 'shc_evictions_total', help: 'Eviction requests, by result.', labelNames: ['result'] as const, registers: [registry] }),
    drainSeconds: new Histogram({ name: 'shc_drain_duration_seconds', help: 'Wall time of node drains, by outcome.', labelNames: ['outcome'] as const, buckets: [5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600], registers: [registry] }),
    providerCalls: new Counter({ name: 'shc_provider_calls_total', help: 'Provider remediation calls, by provider, action and result.', labelNames: ['provider', 'action', 'result'] as const, registers: [registry] }),
    dryRun: new Gauge({ name: 'shc_dry_run', help: '1 when the service only reports decisions and mutates nothing.', registers: [registry] }),
    leader: new Gauge({ name: 'shc_leader', help: '1 while this replica holds the leadership and acts.', registers: [registry] })
  }
  // Zero-initialise the label sets operators alert on, so that rate() works from the first scrape.
  for (const rule of ruleNames) metrics.blocked.inc({ rule }, 0)
  for (const phase of phases) metrics.nodesInPhase.set({ phase }, 0)
  return metrics
}

export type Metrics = ReturnType<typeof createMetrics>
