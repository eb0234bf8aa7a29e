import type { WebhookAlert } from '../../src/alerts/webhook.ts'
import { policyOf, parseConfig, type Config } from '../../src/config.ts'
import type { PolicyConfig } from '../../src/policy/config.ts'
import { createFleet, type Fleet } from '../../src/remediation/fleet.ts'
import { emptyRecord, type NodeRecord, type TrackedAlert } from '../../src/remediation/record.ts'
import { iso } from '../../src/time.ts'
import type { NodeView, Snapshot } from '../../src/remediation/snapshot.ts'

/** Fixed times for the pure-core tests: no test depends on the wall clock. */
export const T0 = Date.parse('2026-11-23T12:00:00Z')
export const minutes = (n: number) => n * 60_000

/** The service's defaults, as parsed from an empty environment: tests exercise the shipped values. */
export function defaultConfig (overrides: Record<string, string> = {}): Config {
  const config = parseConfig([], { WEBHOOK_TOKEN: 'test', ...overrides })
  if (config === 'help') throw new Error('unexpected help')
  return config
}

export function policy (overrides: Partial<PolicyConfig> = {}): PolicyConfig {
  return { ...policyOf(defaultConfig()), ...overrides }
}

export function alert (node: string | undefined, overrides: Partial<WebhookAlert> & { labels?: Record<string, string> } = {}): WebhookAlert {
  const labels: Record<string, string> = { alertname: 'NodeDiskIOPSSaturated', remediation: 'drain', ...(node === undefined ? {} : { node }), ...overrides.labels }
  return {
    status: 'firing',
    annotations: { summary: `disk saturated on ${node}` },
    startsAt: iso(T0 - minutes(10)),
    endsAt: '0001-01-01T00:00:00Z',
    fingerprint: `fp-${node ?? 'none'}`,
    ...overrides,
    labels
  }
}

export function view (name: string, overrides: Partial<NodeView> = {}): NodeView {
  return {
    name,
    uid: `uid-${name}`,
    pool: 'app',
    zone: 'zone-a',
    unschedulable: false,
    providerID: `sim:///zone-a/${name}`,
    bootID: `boot-${name}`,
    ready: true,
    deleting: false,
    taints: [],
    veto: undefined,
    createdAt: T0 - minutes(24 * 60),
    labels: {},
    allocatable: { cpu: 32, memory: 128 * 2 ** 30, pods: 110 },
    record: undefined,
    recordError: undefined,
    ...overrides
  }
}

export function record (overrides: Partial<NodeRecord> = {}): NodeRecord {
  return { ...emptyRecord(T0 - minutes(60)), ...overrides }
}

/** A fleet: `count` nodes per pool over two zones, optionally with records. */
export function fleet (pools: Record<string, number>, records: Record<string, Partial<NodeRecord>> = {}): Map<string, NodeView> {
  const snapshot = new Map<string, NodeView>()
  for (const [pool, count] of Object.entries(pools)) {
    for (let i = 1; i <= count; i++) {
      const name = `${pool}-${i}`
      const r = records[name]
      snapshot.set(name, view(name, { pool, zone: i % 2 === 1 ? 'zone-a' : 'zone-b', ...(r === undefined ? {} : { record: record(r) }) }))
    }
  }
  return snapshot
}

export const firingAlert = (overrides: Partial<TrackedAlert> = {}): TrackedAlert => ({
  alertname: 'NodeDiskIOPSSaturated',
  fingerprint: 'fp',
  startsAt: iso(T0 - minutes(10)),
  status: 'firing',
  action: 'ladder',
  source: 'alertmanager',
  receivedAt: iso(T0 - minutes(9)),
  lastSeen: iso(T0 - minutes(9)),
  ...overrides
})

/** A fleet index holding the given views. */
export function fleetOf (views: Iterable<NodeView>, config: PolicyConfig = policy()): Fleet {
  const index = createFleet(config)
  for (const v of views) index.upsert(v)
  return index
}
