import FakeTimers from '@sinonjs/fake-timers'
import type { V1Node } from '@kubernetes/client-node'
import fc from 'fast-check'
import { pino } from 'pino'
import t from 'tap'
import type { WebhookAlert } from '../../src/alerts/webhook.ts'
import { engineConfigOf } from '../../src/config.ts'
import { createMetrics } from '../../src/metrics.ts'
import { allowedUnavailable, outOfServiceCause, parseBudget } from '../../src/policy/budget.ts'
import type { PolicyConfig } from '../../src/policy/config.ts'
import { pauseBlock } from '../../src/policy/pause.ts'
import { ProviderError, type Provider } from '../../src/providers/provider.ts'
import { createEngine, type Engine, type EngineDeps } from '../../src/remediation/engine.ts'
import { decodeFleetState } from '../../src/remediation/fleet-state.ts'
import { decodeRecord, holdingPhases, type NodeRecord } from '../../src/remediation/record.ts'
import { createNodeStore } from '../../src/remediation/store.ts'
import { createSimCluster, type SimCluster } from '../../src/sim/cluster.ts'
import { createSimProvider } from '../../src/sim/provider.ts'
import { seedTopology, simNodeInfo } from '../../src/sim/topology.ts'
import { iso } from '../../src/time.ts'
import { sleep } from '../../src/timers.ts'
import { defaultConfig } from '../support/core.ts'
import { prefix } from '../support/sim.ts'

/**
 * The promise itself, not its parts: seeded random lifecycles — alerts firing, repeating,
 * resolving, lost, duplicated, reordered, per node or grouped; two replicas sharing one simulated
 * cluster, leadership moving, replicas restarting; operators cordoning and uncordoning; other
 * controllers tainting; nodes going NotReady, being deleted and replaced; providers failing or
 * slow; the API slow (every read and write waits) or unreachable; Prometheus down for the
 * recheck; operators pausing and lifting pauses through either replica — with the invariant
 * checked at every change of every node:
 * - nodes held by us never exceed MAX_CONCURRENT_DRAINS;
 * - when we take a node out of service, its pool and zone stay within budget;
 * - nothing is cordoned from an alert that is stale, resolved, ignored or never sent;
 * - no pod whose data cannot survive is evicted (the seeded topology has such pods);
 * - no cordon of ours goes out while the node's pool or the cluster is paused;
 * - every remediation started reaches an outcome once the alerts stop.
 * The clock is fake (@sinonjs/fake-timers): minutes pass in microseconds, deterministically.
 */

const settings: Record<string, string> = {
  MAX_CONCURRENT_DRAINS: '2',
  POOL_MAX_UNAVAILABLE: '40%',
  MIN_FIRING_AGE: '2m',
  STORM_SETTLE: '30s',
  POOL_SPACING: '1m',
  COOLDOWN: '10m',
  VERIFY_DWELL: '2m',
  BREAKER_THRESHOLD: '0.5',
  BREAKER_MIN_NODES: '3',
  BREAKER_SETTLE: '5m',
  DRAIN_TIMEOUT: '3m',
  REBOOT_TIMEOUT: '5m',
  REPLACE_TIMEOUT: '10m',
  ALERT_TTL: '30m',
  EVICTION_BACKOFF: '1s',
  EVICTION_BACKOFF_MAX: '5s',
  RECONCILE_INTERVAL: '1m',
  PROVIDER_TIMEOUT: '2m'
}

type Episode = { node: string, alertname: string, startsAt: number, fingerprint: string, resolved: boolean, lastFiringDelivered?: number, resolveDelivered: boolean, optedIn: boolean }

type Replica = 'a' | 'b'

/** The world the commands act on and the invariant inspects. */
class World {
  readonly clock: FakeTimers.Clock
  readonly sim: SimCluster
  readonly config = defaultConfig({ ...settings, WEBHOOK_TOKEN: 'x' })
  readonly policy: PolicyConfig
  readonly engines: Record<Replica, Engine>
  readonly observed: SimCluster
  holder: Replica | undefined = 'a'
  providerMode: 'ok' | 'fail' | 'slow' | 'elsewhere' = 'ok'
  /** Injected API latency: every read and write of the engines waits this long. */
  latencyMs = 0
  /** Prometheus, asked right before a cordon: answers after `latencyMs`, or is down. */
  prometheus: 'firing' | 'down' = 'firing'
  readonly episodes: Episode[] = []
  readonly sent: Array<{ at: number, alerts: WebhookAlert[] }> = []
  readonly violations: string[] = []
  /** External disruptions applied by the last command: our decisions could not have seen them yet. */
  unseen = 0
  serial = 0
  /** Remediations started during the lifecycle: a run that starts none tests little. */
  started = 0
  private readonly known = new Map<string, string | undefined>()
  private readonly reader

  readonly budgetForCheck: string

  /** Gates forced on the engines: only for proving that the harness catches what they let through. */
  readonly gates: EngineDeps['gates']

  constructor (budgetForCheck = settings.POOL_MAX_UNAVAILABLE!, gates?: EngineDeps['gates']) {
    this.budgetForCheck = budgetForCheck
    this.gates = gates
    this.clock = FakeTimers.install({ now: Date.parse('2026-11-30T08:00:00Z'), toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'clearImmediate', 'Date'] })
    this.sim = createSimCluster({ terminationDelayMs: 2000, startDelayMs: 2000, retryAfterMs: 3000 })
    seedTopology(this.sim, { poolLabel: 'pool', zoneLabel: 'topology.kubernetes.io/zone', excludeAnnotation: `${prefix}/drain-exclude` })
    this.policy = engineConfigOf(this.config).policy
    this.reader = createNodeStore({ cluster: this.sim, annotationPrefix: prefix, policy: this.policy, metrics: createMetrics(), log: pino({ level: 'silent' }) })
    // Every write the engines make is checked at its instant, before they go on.
    const sim = this.sim
    const slow = async () => { if (this.latencyMs > 0) await sleep(this.latencyMs) }
    this.observed = {
      ...sim,
      getNode: async name => { await slow(); return await sim.getNode(name) },
      listPodsOnNode: async name => { await slow(); return await sim.listPodsOnNode(name) },
      listAllPods: async () => { await slow(); return await sim.listAllPods() },
      readControllerState: async () => { await slow(); return await sim.readControllerState() },
      patchNode: async (name, patch, version) => {
        // Checked as the request leaves: a pause set while it is on the wire cannot recall it.
        if (patch.unschedulable === true) this.checkNotPaused(name)
        await slow()
        try { return await sim.patchNode(name, patch, version) } finally { this.check() }
      },
      writeControllerState: async (...args) => { await slow(); try { return await sim.writeControllerState(...args) } finally { this.check() } },
      evictPod: async (namespace, name) => { this.checkEviction(name); await slow(); return await sim.evictPod(namespace, name) }
    }
    this.engines = { a: this.engine('a'), b: this.engine('b') }
    this.sim.onNodeChange(() => { this.check() })
  }

  engine (replica: Replica): Engine {
    const sim = this.sim
    const simProvider = createSimProvider(sim, { delayMs: 3000 })
    const provider: Provider = {
      name: 'model',
      remediate: async request => {
        const mode = this.providerMode
        if (mode === 'fail') throw new ProviderError('model: the cloud said no', { retryable: false })
        if (mode === 'slow') await sleep(90_000, request.signal)
        if (mode === 'elsewhere' && request.action === 'replace') {
          const name = request.node.metadata!.name!
          // The cloud replaces the machine elsewhere: the node goes, a new one joins a minute later.
          setTimeout(() => { sim.removeNode(name) }, 20_000)
          setTimeout(() => { this.addNode(name) }, 80_000)
          return { detail: `model: ${name} replaced elsewhere`, outcome: 'replacing' }
        }
        return await simProvider.remediate(request)
      }
    }
    const engine = createEngine({
      cluster: this.observed,
      provider,
      metrics: createMetrics(),
      log: pino({ level: 'silent' }),
      config: engineConfigOf(this.config),
      prometheusCheck: async () => {
        await sleep(this.latencyMs)
        if (this.prometheus === 'down') throw new Error('model: Prometheus unreachable')
        return true
      },
      ...(this.gates === undefined ? {} : { gates: this.gates }),
      startAsLeader: this.holder === replica,
      leaseValid: () => this.holder === replica
    })
    engine.start()
    return engine
  }

  addNode (like: string) {
    const old = (this.nodes().find(n => n.metadata!.name === like))
    const pool = old?.metadata?.labels?.pool ?? (Number(like.split('-')[1]) <= 5 ? 'app' : 'data')
    const zone = old?.metadata?.labels?.['topology.kubernetes.io/zone'] ?? 'zone-a'
    const name = `${like}-r${++this.serial}`
    this.sim.addNode({
      metadata: { name, uid: `uid-${name}`, labels: { pool, 'topology.kubernetes.io/zone': zone }, annotations: {}, creationTimestamp: new Date() },
      spec: { providerID: `sim:///${zone}/${name}` },
      status: { conditions: [{ type: 'Ready', status: 'True' }], nodeInfo: simNodeInfo(`boot-${name}`) }
    })
  }

  nodes (): readonly V1Node[] {
    return this.sim.now().nodes
  }

  recordOf (node: V1Node): NodeRecord | undefined {
    const { record } = decodeRecord(node.metadata?.annotations?.[`${prefix}/state`])
    return record?.uid === undefined || record.uid === node.metadata?.uid ? record : undefined
  }

  /**
   * No data lost: the seeded pods nothing would recreate, with emptyDir data, or opted out of
   * disruption are never evicted (the switches are off); the pod on a local volume only when its
   * node is not being replaced.
   */
  checkEviction (pod: string) {
    if (['scratch-shell', 'cache-0', 'batch-7'].includes(pod)) this.violations.push(`evicted ${pod}, which only a switch or removing its opt-out may allow`)
    if (pod === 'pg-0') {
      const node = this.nodes().find(n => n.metadata!.name === 'worker-9')
      const action = node === undefined ? undefined : this.recordOf(node)?.action
      if (action === 'replace') this.violations.push('evicted pg-0 (data on a local volume) to replace its machine')
    }
  }

  /** No cordon of ours goes out while a pause holds the node's pool (nor the cluster). */
  checkNotPaused (name: string) {
    const { nodes, controllerState } = this.sim.now()
    const node = nodes.find(n => n.metadata!.name === name)
    if (node === undefined || this.recordOf(node)?.phase !== 'pending') return
    const pool = this.reader.toView(node).pool
    const pauses = decodeFleetState(controllerState.annotations, '', prefix).pauses
    if (pauseBlock(pauses, pool, Date.now()) !== undefined) this.violations.push(`cordoned ${name} while pool ${pool} was paused`)
  }

  /** The invariant, on the cluster's truth, at every change. */
  check () {
    const { nodes, controllerState } = this.sim.now()
    this.inspect(nodes, controllerState.annotations)
  }

  private inspect (nodes: readonly V1Node[], annotations: Readonly<Record<string, string>>) {
    const views = nodes.map(node => ({ node, view: this.reader.toView(node), record: this.recordOf(node) }))
    const departed = decodeFleetState(annotations, '', prefix).departed
    const held = views.filter(v => v.record !== undefined && holdingPhases.has(v.record.phase)).length + departed.size
    if (held > this.policy.maxConcurrentDrains) this.violations.push(`${held} nodes held by us (max ${this.policy.maxConcurrentDrains})`)
    const budget = parseBudget(this.budgetForCheck)!
    for (const { node, view, record } of views) {
      const name = node.metadata!.name!
      const remediation = record !== undefined && holdingPhases.has(record.phase) ? record.remediationId : undefined
      const before = this.known.get(name)
      this.known.set(name, record?.remediationId)
      if (remediation === undefined || remediation === before) continue
      this.started++
      // We just took this node out of service: its scopes must stay within budget.
      for (const [label, inScope] of [['pool', (v: typeof view) => v.pool === view.pool], ['zone', (v: typeof view) => v.pool === view.pool && v.zone === view.zone]] as const) {
        const scope = views.filter(v => inScope(v.view))
        const departedHere = [...departed.values()].filter(d => d.pool === view.pool && (label === 'pool' || d.zone === view.zone)).length
        const out = scope.filter(v => outOfServiceCause(v.view, this.policy) !== undefined).length + departedHere
        const allowed = allowedUnavailable(budget, scope.length + departedHere)
        if (out > allowed + this.unseen) this.violations.push(`cordoned ${name}: ${label} of ${view.pool}/${view.zone} has ${out} out of service, budget ${allowed}`)
      }
      // …and only from an alert Alertmanager sent, still firing as far as anyone could know, within ALERT_TTL.
      const at = Date.now()
      const justified = this.episodes.some(e => e.node === name && e.optedIn && !e.resolveDelivered && e.lastFiringDelivered !== undefined && at - e.lastFiringDelivered < this.policy.alertTtlMs)
      if (!justified) this.violations.push(`cordoned ${name} without a live, delivered, opted-in alert`)
    }
  }

  async deliver (replica: Replica, alerts: WebhookAlert[]) {
    this.sent.push({ at: Date.now(), alerts })
    try {
      await this.whileTicking(this.engines[replica].intake(alerts, 'alertmanager', false, { truncatedAlerts: 0, groupKey: 'model' }))
      return true
    } catch {
      return false
    }
  }

  toWebhook (e: Episode, status: 'firing' | 'resolved'): WebhookAlert {
    return {
      status,
      labels: { alertname: e.alertname, node: e.node, ...(e.optedIn ? { remediation: 'drain' } : {}) },
      startsAt: iso(e.startsAt),
      endsAt: status === 'firing' ? '0001-01-01T00:00:00Z' : iso(Date.now()),
      fingerprint: e.fingerprint
    }
  }

  /** Awaits an engine call whose reads and writes take (fake) time: the clock moves until it is done. */
  async whileTicking<T> (promise: Promise<T>): Promise<T> {
    let done = false
    promise.then(() => { done = true }, () => { done = true })
    await this.clock.tickAsync(0)
    while (!done) await this.clock.tickAsync(50)
    return await promise
  }

  async settle (ms: number) {
    await this.clock.tickAsync(ms)
    this.unseen = 0
  }

  async close () {
    await Promise.all(Object.values(this.engines).map(e => e.stop()))
    this.sim.close()
    this.clock.uninstall()
  }
}

const nodeNames = Array.from({ length: 10 }, (_, i) => `worker-${i + 1}`)
const alertnames = ['NodeDiskIOPSSaturated', 'NodeDatabaseConnectionLatencyHigh']

type Model = { steps: number }
type Command = fc.AsyncCommand<Model, World>

const command = (label: string, run: (w: World) => Promise<void>): Command => ({
  check: () => true,
  run: async (_m, w) => {
    if (process.env.SHC_INVARIANT_DEBUG !== undefined) console.error('  >', label)
    await run(w)
  },
  toString: () => label
})

const replica = fc.constantFrom<Replica>('a', 'b')

const fire = fc.record({ nodes: fc.oneof(fc.subarray(nodeNames, { minLength: 1, maxLength: 2 }), fc.subarray(nodeNames, { minLength: 1, maxLength: 2 }), fc.subarray(nodeNames, { minLength: 3, maxLength: 8 })), alertname: fc.constantFrom(...alertnames), grouped: fc.boolean(), age: fc.constantFrom(0, 60_000, 600_000), optedIn: fc.constantFrom(true, true, true, false), to: replica })
  .map(({ nodes, alertname, grouped, age, optedIn, to }) => command(`fire ${alertname} on ${nodes.join(',')} ${grouped ? 'grouped' : 'per node'} age ${age / 1000}s to ${to}${optedIn ? '' : ' (not opted in)'}`, async w => {
    const now = Date.now()
    const episodes = nodes.map(node => {
      const live = w.episodes.find(e => e.node === node && e.alertname === alertname && !e.resolved)
      if (live !== undefined) return live
      const e: Episode = { node, alertname, startsAt: now - age, fingerprint: `${alertname}-${node}`, resolved: false, resolveDelivered: false, optedIn }
      w.episodes.push(e)
      return e
    })
    const batches = grouped ? [episodes] : episodes.map(e => [e])
    for (const batch of batches) {
      if (await w.deliver(to, batch.map(e => w.toWebhook(e, 'firing')))) for (const e of batch) e.lastFiringDelivered = Date.now()
      await w.clock.tickAsync(50)
    }
  }))

const resolve = fc.record({ node: fc.constantFrom(...nodeNames), lost: fc.boolean(), to: replica })
  .map(({ node, lost, to }) => command(`resolve ${node}${lost ? ' (resolve lost)' : ''} to ${to}`, async w => {
    for (const e of w.episodes.filter(e => e.node === node && !e.resolved)) {
      e.resolved = true
      if (!lost && await w.deliver(to, [w.toWebhook(e, 'resolved')])) e.resolveDelivered = true
    }
  }))

const repeat = replica.map(to => command(`Alertmanager repeats every active alert to ${to}`, async w => {
  const active = w.episodes.filter(e => !e.resolved)
  if (active.length > 0 && await w.deliver(to, active.map(e => w.toWebhook(e, 'firing')))) for (const e of active) e.lastFiringDelivered = Date.now()
}))

// Alertmanager retries a notification until its deadline (minutes, not hours): a duplicate or a
// reordered notification arrives within that window. A late firing duplicate is a delivery of
// "firing" to the receiver (it cannot tell it from a repeat), unless its resolve came before it.
const retryWindowMs = 5 * 60_000
const replay = fc.record({ index: fc.nat(), to: replica }).map(({ index, to }) => command(`replay a recent notification (#${index}) to ${to}`, async w => {
  const recent = w.sent.filter(n => Date.now() - n.at < retryWindowMs)
  if (recent.length === 0) return
  const old = recent[index % recent.length]!
  if (await w.deliver(to, old.alerts)) {
    for (const alert of old.alerts) {
      const e = w.episodes.find(e => e.fingerprint === alert.fingerprint && iso(e.startsAt) === alert.startsAt)
      if (alert.status === 'firing' && e !== undefined && !e.resolveDelivered) e.lastFiringDelivered = Date.now()
    }
  }
}))

const tick = fc.constantFrom(1000, 15_000, 60_000, 180_000, 600_000, 1_800_000).map(ms => command(`tick ${ms / 1000}s`, async w => { await w.settle(ms) }))

const operator = fc.record({ node: fc.constantFrom(...nodeNames), action: fc.constantFrom('cordon', 'uncordon', 'taint', 'untaint', 'not-ready', 'ready', 'delete') })
  .map(({ node, action }) => command(`${action} ${node}`, async w => {
    const exists = w.nodes().some(n => n.metadata!.name === node)
    if (!exists && action !== 'delete') return
    if (action === 'cordon' || action === 'taint' || action === 'not-ready' || action === 'delete') w.unseen++
    switch (action) {
      case 'cordon': await w.sim.patchNode(node, { unschedulable: true }).catch(() => {}); break
      case 'uncordon': await w.sim.patchNode(node, { unschedulable: false }).catch(() => {}); break
      case 'taint': w.sim.updateNode(node, n => { n.spec = { ...n.spec, taints: [{ key: 'karpenter.sh/disrupted', effect: 'NoSchedule' }] } }); break
      case 'untaint': w.sim.updateNode(node, n => { n.spec = { ...n.spec, taints: [] } }); break
      case 'not-ready': w.sim.updateNode(node, n => { n.status = { ...n.status, conditions: [{ type: 'Ready', status: 'False' }] } }); break
      case 'ready': w.sim.updateNode(node, n => { n.status = { ...n.status, conditions: [{ type: 'Ready', status: 'True' }] } }); break
      case 'delete':
        if (exists) {
          w.sim.removeNode(node)
          setTimeout(() => { w.addNode(node) }, 120_000)
        }
        break
    }
    await w.clock.tickAsync(0)
  }))

const leadership = fc.constantFrom<Replica | 'none'>('a', 'b', 'none').map(to => command(`leadership to ${to}`, async w => {
  const before = w.holder
  w.holder = to === 'none' ? undefined : to
  // The elector's demotion comes a moment after the lease is lost; the fence stops writes at once.
  if (before !== undefined && before !== w.holder) void w.engines[before].setLeader(false)
  if (w.holder !== undefined && w.holder !== before) void w.engines[w.holder].setLeader(true)
  await w.clock.tickAsync(0)
}))

const restart = replica.map(which => command(`restart replica ${which}`, async w => {
  await w.whileTicking(w.engines[which].stop())
  w.engines[which] = w.engine(which)
  await w.clock.tickAsync(0)
}))

const provider = fc.constantFrom<World['providerMode']>('ok', 'fail', 'slow', 'elsewhere').map(mode => command(`provider ${mode}`, async w => { w.providerMode = mode }))

const outage = fc.constantFrom(5_000, 30_000, 120_000).map(ms => command(`API unreachable for ${ms / 1000}s`, async w => {
  w.sim.setReachable(false)
  await w.clock.tickAsync(ms)
  w.sim.setReachable(true)
}))

const latency = fc.constantFrom(0, 0, 200, 2_000, 20_000).map(ms => command(`API latency ${ms} ms`, async w => { w.latencyMs = ms }))

const prometheus = fc.constantFrom<World['prometheus']>('firing', 'firing', 'down').map(state => command(`Prometheus ${state}`, async w => { w.prometheus = state }))

const pause = fc.record({ scope: fc.constantFrom<string | undefined>(undefined, 'app', 'data'), lift: fc.boolean(), expiresInMs: fc.constantFrom<number | undefined>(undefined, 60_000, 600_000), via: replica })
  .map(({ scope, lift, expiresInMs, via }) => command(`${lift ? 'lift the pause of' : 'pause'} ${scope ?? 'the cluster'}${!lift && expiresInMs !== undefined ? ` for ${expiresInMs / 1000}s` : ''} via ${via}`, async w => {
    const at = Date.now()
    await w.whileTicking(w.engines[via].setPause(scope, lift ? undefined : { reason: 'model', by: 'model', at: iso(at), ...(expiresInMs === undefined ? {} : { until: iso(at + expiresInMs) }) })).catch(() => {})
  }))

const commands = [fire, fire, resolve, repeat, replay, tick, tick, tick, operator, leadership, restart, provider, outage, latency, prometheus, pause]

/** After the sequence: Alertmanager resolves everything, time passes; every remediation must have ended. */
async function finish (w: World) {
  w.sim.setReachable(true)
  w.providerMode = 'ok'
  w.latencyMs = 0
  w.prometheus = 'firing'
  for (const scope of [undefined, 'app', 'data']) await w.whileTicking(w.engines.a.setPause(scope, undefined)).catch(() => {})
  if (w.holder === undefined) { w.holder = 'a'; void w.engines.a.setLeader(true) }
  for (const e of w.episodes.filter(e => !e.resolved)) {
    e.resolved = true
    if (await w.deliver(w.holder!, [w.toWebhook(e, 'resolved')])) e.resolveDelivered = true
  }
  for (let i = 0; i < 12; i++) await w.settle(15 * 60_000)
  for (const node of w.nodes()) {
    const record = w.recordOf(node)
    if (record === undefined) continue
    const ended = ['healthy', 'cooldown', 'cancelled', 'failed', 'quarantined'].includes(record.phase)
    if (!ended) w.violations.push(`${node.metadata!.name} still ${record.phase} (${record.reason}) three hours after every alert ended`)
  }
}

const stats = { runs: 0, started: 0, withStarts: 0 }

async function runLifecycle (cmds: Iterable<Command>, budgetForCheck?: string, gates?: EngineDeps['gates']): Promise<string[]> {
  const began = performance.now()
  const cpu = process.cpuUsage()
  const w = new World(budgetForCheck, gates)
  try {
    await fc.asyncModelRun(() => ({ model: { steps: 0 }, real: w }), cmds)
    await finish(w)
    stats.runs++
    stats.started += w.started
    if (w.started > 0) stats.withStarts++
    if (process.env.SHC_INVARIANT_DEBUG !== undefined) console.error(`${Math.round(performance.now() - began)}ms real ${Math.round(process.cpuUsage(cpu).user / 1000)}ms cpu`, String(cmds).slice(0, 200), '→', w.started, 'started', w.violations)
    return w.violations
  } finally {
    await w.close()
  }
}

const runs = Number(process.env.SHC_INVARIANT_RUNS ?? 2000)
// Two thousand lifecycles take a few minutes on this machine: more than the runner's default per file.
t.setTimeout(20 * 60_000)

t.test(`the invariant holds over ${runs} seeded lifecycles with two replicas on one cluster`, { timeout: 0 }, async t => {
  const result = await fc.check(fc.asyncProperty(fc.commands(commands, { maxCommands: 40, size: 'large' }), async cmds => {
    const violations = await runLifecycle(cmds)
    if (violations.length > 0) throw new Error(violations.slice(0, 5).join('\n'))
  }), { seed: 20261201, numRuns: runs, endOnFailure: false })
  t.notOk(result.failed, result.failed ? `seed ${result.seed}, path ${result.counterexamplePath}\n${String(result.errorInstance)}\n${fc.defaultReportMessage(result)}` : "no violation")
  t.ok(stats.withStarts >= runs / 4, `the lifecycles exercise remediation: ${stats.withStarts} of ${stats.runs} started at least one (${stats.started} in all)`)
})

t.test('the harness can fail: checked against a tighter budget than the engine obeys, it finds the breach', { timeout: 0 }, async t => {
  const result = await fc.check(fc.asyncProperty(fc.commands(commands, { maxCommands: 40, size: 'large' }), async cmds => {
    const violations = await runLifecycle(cmds, '1')
    if (violations.some(v => v.includes('out of service, budget'))) throw new Error(violations[0])
  }), { seed: 20261202, numRuns: 200, endOnFailure: true })
  t.ok(result.failed, 'a 40% budget is not a budget of 1: some lifecycle cordons a second node in a pool')
})

t.test('the harness can fail: an engine that ignores pauses is caught cordoning under one', { timeout: 0 }, async t => {
  const result = await fc.check(fc.asyncProperty(fc.commands(commands, { maxCommands: 40, size: 'large' }), async cmds => {
    const violations = await runLifecycle(cmds, undefined, { paused: () => undefined })
    if (violations.some(v => v.includes('was paused'))) throw new Error(violations[0])
  }), { seed: 20261203, numRuns: 300, endOnFailure: true })
  t.ok(result.failed, 'some lifecycle pauses a pool and then sees a cordon in it')
})
