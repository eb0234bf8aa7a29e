// The whole chain with the real programs: signal exporter → Prometheus 2.42 (the project's rules,
// time-scaled ÷30) → Alertmanager 0.25 (the project's receiver config) → the service as a child
// process (`node src/cli.ts`, simulated cluster) → drain.
//
// Two stacks run side by side so the file stays near a minute and a half:
//   A: a disk fault on worker-3 fires, is delivered, drained and replaced; clearing the fault
//      resolves the alert and the service records the resolution.
//   B: a NIC fault on worker-7 (pool data) is delivered; Prometheus is stopped right away, so
//      the recheck before the drain cannot confirm the alert and worker-7 is never cordoned.
//   A, then: a DB fault on worker-8 is delivered and silenced in Alertmanager before it is old
//      enough: the service reads the silence (ALERTMANAGER_URL) and lets the node go, undrained.
//
// Timing (factor 30: 5m → 10s windows, for 10s, keep_firing_for 20s, 1s scrape/evaluation):
// a sustained fault fires ~29s after injection (two consecutive 10s windows, then `for: 10s`),
// a cleared one resolves ~23s later (window + keep_firing_for) plus up to group_interval (10s).
// Stack B depends on one margin: MIN_FIRING_AGE (10s) must outlast the path from Alertmanager's
// delivery to Prometheus being dead (normally < 1s); the test checks it and says so if not.
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import t, { type Test } from 'tap'
import { createSignalExporter, type SignalExporter } from '../support/signal-exporter.ts'
import {
  e2eSkip, freePort, launch, makeTempDir, removeTempDir, sleep, startMonitoring, waitHealthy, waitUntil,
  type Daemon, type Monitoring
} from '../support/prometheus.ts'

const skip = e2eSkip()
const nodes = Array.from({ length: 10 }, (_, i) => `worker-${i + 1}`)
const MIN_FIRING_AGE_MS = 10_000
const RECONCILE_INTERVAL_MS = 1000

type NodeStatus = {
  name: string
  phase: string
  unschedulable: boolean
  reason: string
  alert: { alertname: string, status: string, startsAt: string, source: string } | null
  deferred: { rule: string, reason: string } | null
  transitions: Array<{ from: string, to: string, at: string, reason: string }>
}

type Stack = {
  name: string
  exporter: SignalExporter
  monitoring: Monitoring
  service: Daemon
  serviceUrl: string
  token: string
  node (name: string): Promise<NodeStatus>
  nodes (): Promise<NodeStatus[]>
  metrics (): Promise<string>
  logs (): string
}

/** Exporter, Prometheus + Alertmanager, then the service; each part torn down by t. */
async function startStack (t: Test, name: string): Promise<Stack> {
  const began = Date.now()
  const dir = makeTempDir(`shc-e2e-${name}-`)
  t.teardown(() => removeTempDir(dir))
  const token = randomBytes(16).toString('hex')
  const tokenFile = path.join(dir, 'webhook-token')
  fs.writeFileSync(tokenFile, token, { mode: 0o600 })

  const exporter = createSignalExporter({ nodes })
  const { url: exporterUrl } = await exporter.listen()
  t.teardown(() => exporter.close())

  const port = await freePort()
  const serviceUrl = `http://127.0.0.1:${port}`
  const monitoring = await startMonitoring({ exporterUrl, nodes, webhookUrl: `${serviceUrl}/v1/alerts`, webhookTokenFile: tokenFile })
  t.teardown(() => monitoring.stop())

  // Only what the service needs: nothing from this shell (PORT, DRY_RUN, KUBECONFIG, tap's NODE_OPTIONS) leaks in.
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    CLUSTER: 'sim',
    HOST: '127.0.0.1',
    PORT: String(port),
    WEBHOOK_TOKEN_FILE: tokenFile,
    MIN_FIRING_AGE: `${MIN_FIRING_AGE_MS / 1000}s`,
    RECONCILE_INTERVAL: `${RECONCILE_INTERVAL_MS / 1000}s`,
    PROMETHEUS_URL: monitoring.prometheusUrl,
    ALERTMANAGER_URL: monitoring.alertmanagerUrl,
    ALERTMANAGER_SYNC: '2s',
    STORM_SETTLE: '1s',
    VERIFY_DWELL: '2s',
    LOG_LEVEL: 'info'
  }
  t.comment(`${name}: monitoring up after ${Date.now() - began} ms`)
  const service = launch(`service-${name}`, process.execPath, ['src/cli.ts'], { logPath: path.join(dir, 'service.log'), env })
  t.teardown(() => service.stop())
  await waitHealthy(service, `${serviceUrl}/readyz`, 30_000)
  t.comment(`${name}: service ready after ${Date.now() - began} ms`)

  const get = async (p: string) => {
    const res = await fetch(`${serviceUrl}${p}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5000) })
    if (!res.ok) throw new Error(`GET ${p}: ${res.status} ${await res.text()}`)
    return res
  }
  return {
    name,
    exporter,
    monitoring,
    service,
    serviceUrl,
    token,
    node: async n => await (await get(`/v1/nodes/${n}`)).json() as NodeStatus,
    nodes: async () => (await (await get('/v1/nodes')).json() as { nodes: NodeStatus[] }).nodes,
    metrics: async () => await (await get('/metrics')).text(),
    logs: () => `--- service ---\n${service.logTail(20)}\n${monitoring.logs()}`
  }
}

/** Adds the stack's log tails to a failure: the only way to see what a child process did. */
async function explained<T> (stack: Stack, work: Promise<T>): Promise<T> {
  try {
    return await work
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${stack.logs()}`)
  }
}

/** Until every node has all three recorded signals: the sample-count guards are satisfied. */
async function signalsReady (stack: Stack) {
  const recorded = ['node:node_disk_io_time_seconds:max_rate5m', 'node:node_network_errors:ratio_rate5m', 'node:db_client_connection_latency_seconds:p99_rate5m']
  return waitUntil(`recorded signals for ${nodes.length} nodes`, async () => {
    const results = await Promise.all(recorded.map(r => stack.monitoring.query(r)))
    return results.every(r => r.length === nodes.length) ? results : undefined
  }, { timeoutMs: 45_000, intervalMs: 500 })
}

const hasPhase = (status: NodeStatus, phase: string) => status.transitions.some(tr => tr.to === phase)

type RecheckObservation = {
  firing: NodeStatus
  firedAfterMs: number
  prometheusStoppedAt: number
  eligibleAt: number
  watched: NodeStatus[]
  final: NodeStatus
}

/**
 * Stack B's timing-critical part, started before stack A's subtests so both run at once: inject,
 * stop Prometheus the moment the service holds the alert, then watch past MIN_FIRING_AGE.
 */
async function observeRecheck (stack: Stack): Promise<RecheckObservation> {
  await signalsReady(stack)
  const injected = Date.now()
  stack.exporter.setFault('worker-7', 'nic')
  const firing = await waitUntil('Alertmanager to deliver the worker-7 alert', async () => {
    const status = await stack.node('worker-7')
    return status.alert !== null ? status : undefined
  }, { timeoutMs: 90_000, intervalMs: 200 })
  await stack.monitoring.stopPrometheus()
  const prometheusStoppedAt = Date.now()
  const eligibleAt = Date.parse(firing.alert!.startsAt) + MIN_FIRING_AGE_MS
  // Past the minimum firing age, then several reconcile passes: each would start the drain if
  // the recheck let it. Sample the node all along to catch even a brief cordon.
  const watched: NodeStatus[] = []
  const watchUntil = Math.max(eligibleAt, Date.now()) + 6 * RECONCILE_INTERVAL_MS
  for (let i = 0; i < 200 && Date.now() < watchUntil; i++) {
    watched.push(await stack.node('worker-7'))
    await sleep(250)
  }
  const final = await waitUntil('the recheck to defer worker-7', async () => {
    const status = await stack.node('worker-7')
    return status.deferred?.rule === 'recheck' ? status : undefined
  }, { timeoutMs: 10_000, intervalMs: 250 })
  return { firing, firedAfterMs: Date.parse(firing.alert!.startsAt) - injected, prometheusStoppedAt, eligibleAt, watched, final }
}

t.test('signal exporter → Prometheus → Alertmanager → service', { skip, timeout: 240_000 }, async t => {
  const started = Date.now()
  const [a, b] = await Promise.all([startStack(t, 'drain'), startStack(t, 'recheck')])
  t.comment(`two stacks up in ${Date.now() - started} ms`)
  const recheck = explained(b, observeRecheck(b))
  recheck.catch(() => {}) // awaited (and reported) by its subtest below

  await t.test('baseline: every node has its three signals, all healthy, no alert', async t => {
    const [disk, nic, db] = await explained(a, signalsReady(a))
    for (const s of disk!) t.ok(Number(s.value[1]) < 0.8, `disk ${s.metric.node} ${s.value[1]} < 0.8`)
    for (const s of nic!) t.ok(Number(s.value[1]) < 0.005, `nic ${s.metric.node} ${s.value[1]} < 0.005`)
    for (const s of db!) t.ok(Number(s.value[1]) < 0.25, `db p99 ${s.metric.node} ${s.value[1]} < 0.25`)
    t.same(await a.monitoring.query('ALERTS{remediation!=""}'), [], 'no remediation alert, despite loop0 and the veth pair being saturated')
    t.same(await a.nodes(), [], 'the service tracks no node')
  })

  let injectedAt = 0
  await t.test('disk fault on worker-3: fires, is delivered, drained, replaced', async t => {
    injectedAt = Date.now()
    a.exporter.setFault('worker-3', 'disk')
    const pending = await explained(a, waitUntil('the service to receive the worker-3 alert', async () => {
      const status = await a.node('worker-3')
      return status.alert !== null ? status : undefined
    }, { timeoutMs: 90_000, intervalMs: 250 }))
    t.equal(pending.alert?.alertname, 'NodeDiskIOPSSaturated')
    t.equal(pending.alert?.status, 'firing')
    t.equal(pending.alert?.source, 'alertmanager', 'through Alertmanager, with its bearer token')
    const onsetMs = Date.parse(pending.alert!.startsAt) - injectedAt
    t.comment(`fired ${onsetMs} ms after the fault (scaled rule: two 10s windows, then for: 10s)`)
    t.ok(onsetMs >= 20_000, 'no earlier than two windows plus part of `for`: the onset semantics survived the scaling')
    const firing = await a.monitoring.query('ALERTS{alertname="NodeDiskIOPSSaturated",alertstate="firing"}')
    t.same(firing.map(s => s.metric.node), ['worker-3'], 'Prometheus reports it firing for worker-3 only')

    const done = await explained(a, waitUntil('worker-3 to reach cooldown', async () => {
      const status = await a.node('worker-3')
      return status.phase === 'cooldown' ? status : undefined
    }, { timeoutMs: 60_000, intervalMs: 250 }))
    for (const phase of ['pending', 'cordoned', 'draining', 'remediating', 'rebooting', 'verifying', 'cooldown']) t.ok(hasPhase(done, phase), `went through ${phase}`)
    const cordoned = done.transitions.find(tr => tr.to === 'cordoned')!
    t.ok(Date.parse(cordoned.at) >= Date.parse(done.alert!.startsAt) + MIN_FIRING_AGE_MS, 'cordoned only after MIN_FIRING_AGE')
    t.equal(done.unschedulable, false, 'rebooted (the ladder\'s first rung), back on a new boot, verified: schedulable again')
    t.same((await a.nodes()).map(n => n.name), ['worker-3'], 'no other node was touched')
  })

  await t.test('fault cleared: the alert resolves and the service records it', async t => {
    a.exporter.clear()
    const clearedAt = Date.now()
    const resolved = await explained(a, waitUntil('a resolved notification for worker-3', async () => {
      const status = await a.node('worker-3')
      return status.alert?.status === 'resolved' ? status : undefined
    }, { timeoutMs: 90_000, intervalMs: 250 }))
    t.comment(`resolved in the service ${Date.now() - clearedAt} ms after the fault was cleared`)
    t.equal(resolved.phase, 'cooldown', 'a finished remediation stays in cooldown')
    t.same(await a.monitoring.query('ALERTS{node="worker-3"}'), [], 'Prometheus no longer has the alert')
    // The leader's Alertmanager sync may see the alert gone before the resolved notification comes.
    const metrics = await explained(a, waitUntil('the resolved notification', async () => {
      const text = await a.metrics()
      return /shc_alerts_received_total\{source="alertmanager",status="resolved"\} [1-9]/.test(text) ? text : undefined
    }, { timeoutMs: 30_000, intervalMs: 500 }))
    t.match(metrics, /shc_alerts_received_total\{source="alertmanager",status="firing"\} [1-9]/)
  })

  await t.test('silenced in Alertmanager before it is old enough: worker-8 is let go, never cordoned', async t => {
    a.exporter.setFault('worker-8', 'db')
    const pending = await explained(a, waitUntil('the service to receive the worker-8 alert', async () => {
      const status = await a.node('worker-8')
      return status.alert !== null ? status : undefined
    }, { timeoutMs: 90_000, intervalMs: 200 }))
    t.equal(pending.phase, 'pending')
    const now = Date.now()
    const silence = await fetch(`${a.monitoring.alertmanagerUrl}/api/v2/silences`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ matchers: [{ name: 'node', value: 'worker-8', isRegex: false, isEqual: true }], startsAt: new Date(now).toISOString(), endsAt: new Date(now + 3_600_000).toISOString(), createdBy: 'e2e', comment: 'an operator says stop' })
    })
    t.equal(silence.status, 200, await silence.clone().text())
    const released = await explained(a, waitUntil('the service to let worker-8 go', async () => {
      const status = await a.node('worker-8')
      return status.phase === 'cancelled' ? status : undefined
    }, { timeoutMs: 30_000, intervalMs: 250 }))
    t.match(released.reason, /silenced or inhibited in Alertmanager|no longer holds any of the node's alerts active/)
    t.notOk(hasPhase(released, 'cordoned'), 'never cordoned')
    t.equal(released.unschedulable, false)
    a.exporter.clear()
  })

  await t.test('Prometheus stopped before the recheck: worker-7 is never cordoned', async t => {
    const seen = await recheck
    t.comment(`fired ${seen.firedAfterMs} ms after the fault; Prometheus stopped ${seen.eligibleAt - seen.prometheusStoppedAt} ms before the drain could start`)
    t.equal(seen.firing.alert?.alertname, 'NodeNetworkInterfaceErrors')
    t.equal(seen.firing.phase, 'pending')
    // The premise of the scenario: had Prometheus still been up when the drain became eligible,
    // the recheck would have passed. A machine too slow for the margin fails here, not randomly.
    t.ok(seen.prometheusStoppedAt < seen.eligibleAt, 'Prometheus was stopped before MIN_FIRING_AGE elapsed')
    t.ok(seen.watched.length > 0, 'the node was watched past MIN_FIRING_AGE')
    t.same(seen.watched.filter(s => s.phase !== 'pending' || s.unschedulable).map(s => `${s.phase}/${s.unschedulable}`), [],
      'pending and schedulable at every sample')
    t.equal(seen.final.phase, 'pending')
    t.equal(seen.final.unschedulable, false)
    t.equal(seen.final.deferred?.rule, 'recheck')
    t.match(seen.final.deferred?.reason ?? '', /Prometheus/)
    t.notOk(hasPhase(seen.final, 'cordoned'), 'no cordoned transition')
    t.same((await b.nodes()).map(n => n.name), ['worker-7'], 'no other node was touched')
  })

  t.comment(`whole chain in ${Math.round((Date.now() - started) / 1000)} s`)
})
