// The lab: a whole Self-Healing Controller setup on this machine, in one command.
//
//   npm run lab                   KWOK control plane + workloads, exporter, Prometheus, Alertmanager, service
//   npm run lab -- --sim          no control plane: the service's own simulated cluster
//   npm run lab -- --nodes 8      more KWOK nodes (default 6)
//
// Everything binds 127.0.0.1 on free ports, lives in temp dirs, and is time-scaled ÷30 like the
// e2e test (5m windows → 10s, for 5m → 10s; the service's own timings too), so a fault fires
// within a minute. Ctrl-C stops every process and removes every temp dir.
//
// It lives in scripts/, not src/: it imports the test harnesses (test/support), and src/ is what
// tsconfig.build.json (rootDir src) and the Docker image build, which must not pull test code in.

import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { ensureBinaries, HOW_TO_PROVIDE_BINARIES, startControlPlane, type ControlPlane } from '../../test/support/controlplane.ts'
import {
  defaultScale, freePort, launch, makeTempDir, missingBinaries, removeTempDir, repoRoot, startMonitoring, waitHealthy,
  type Daemon, type Monitoring
} from '../../test/support/prometheus.ts'
import { createSignalExporter, faultKinds, type SignalExporter } from '../../test/support/signal-exporter.ts'

const usage = `usage: npm run lab -- [--sim] [--nodes N]

  --sim       skip the Kubernetes control plane; the service runs on its simulated cluster
  --nodes N   KWOK nodes worker-1..worker-N (default 6, 2-20); half in pool app, half in pool data

Service settings can be overridden through the environment (e.g. MIN_FIRING_AGE=30s npm run lab).`

/**
 * The service's time-based defaults divided by the same factor as the rules (÷30), so the safety
 * rules keep their proportions to the alert timings. Any of them set in the environment wins.
 */
const scaledServiceSettings: Record<string, string> = {
  MIN_FIRING_AGE: '4s', // 2m
  COOLDOWN: '1m', // 30m
  POOL_SPACING: '10s', // 5m
  FLAP_WINDOW: '2m', // 1h
  BREAKER_SETTLE: '20s', // 10m
  DRAIN_TIMEOUT: '30s', // 15m
  PROVIDER_TIMEOUT: '20s', // 10m
  REBOOT_TIMEOUT: '30s', // 15m
  REPLACE_TIMEOUT: '1m', // 30m
  VERIFY_DWELL: '10s', // 5m
  STORM_SETTLE: '1s', // 30s
  ALERT_TTL: '5m', // 2h10m
  ALERTMANAGER_SYNC: '2s', // 1m
  RECONCILE_INTERVAL: '2s' // 1m
}

type Mode = 'kubernetes' | 'sim'

type Lab = {
  dir: string
  controlPlane?: ControlPlane
  exporter?: SignalExporter
  monitoring?: Monitoring
  service?: Daemon
}

const log = (line = '') => process.stdout.write(`${line}\n`)
const note = (line: string) => process.stderr.write(`lab: ${line}\n`)

/** Nodes the lab creates: worker-1..N, first half pool app, second half pool data, zones alternating. */
function kwokNodes (count: number) {
  return Array.from({ length: count }, (_, i) => ({
    name: `worker-${i + 1}`,
    labels: {
      pool: i < Math.ceil(count / 2) ? 'app' : 'data',
      'topology.kubernetes.io/zone': i % 2 === 0 ? 'zone-a' : 'zone-b'
    }
  }))
}

/** Two Deployments with PodDisruptionBudgets and a DaemonSet (which a drain leaves alone). */
function workloads (nodes: number): string {
  const deployment = (name: string, replicas: number, nodeSelector?: Record<string, string>) => `apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name}, namespace: default }
spec:
  replicas: ${replicas}
  selector: { matchLabels: { app: ${name} } }
  template:
    metadata: { labels: { app: ${name} } }
    spec:
      ${nodeSelector ? `nodeSelector: ${JSON.stringify(nodeSelector)}` : 'nodeSelector: {}'}
      containers: [{ name: ${name}, image: registry.invalid/${name}:1 }]
`
  return [
    'apiVersion: v1\nkind: Namespace\nmetadata: { name: self-healing-controller }\n',
    deployment('web', nodes),
    'apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: { name: web, namespace: default }\nspec: { maxUnavailable: 1, selector: { matchLabels: { app: web } } }\n',
    deployment('db', 3, { pool: 'data' }),
    'apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: { name: db, namespace: default }\nspec: { minAvailable: 2, selector: { matchLabels: { app: db } } }\n',
    `apiVersion: apps/v1
kind: DaemonSet
metadata: { name: node-exporter, namespace: default }
spec:
  selector: { matchLabels: { app: node-exporter } }
  template:
    metadata: { labels: { app: node-exporter } }
    spec:
      containers: [{ name: node-exporter, image: registry.invalid/node-exporter:1 }]
`
  ].join('---\n')
}

async function startKubernetes (lab: Lab, count: number): Promise<ControlPlane | undefined> {
  let binDir: string
  try {
    // build.sh: a second when cached; otherwise it builds them (about 20 minutes once) or says why it cannot.
    binDir = await ensureBinaries()
  } catch (err) {
    note(`no control plane binaries, so no Kubernetes: ${(err as Error).message.split('\n')[0]}`)
    note(HOW_TO_PROVIDE_BINARIES)
    return undefined
  }
  const started = Date.now()
  note('starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK…')
  const cp = await startControlPlane({ binDir })
  lab.controlPlane = cp
  await cp.createFakeNodes(kwokNodes(count))
  const applied = await cp.kubectl(['apply', '-f', '-'], { input: workloads(count) })
  if (applied.code !== 0) throw new Error(`kubectl apply failed: ${applied.stderr}`)
  const ready = await cp.kubectl(['wait', '--for=condition=Available', 'deployment/web', 'deployment/db', '--timeout=90s'], { timeoutMs: 100_000 })
  if (ready.code !== 0) note(`workloads not Available yet (${ready.stderr.trim()}); carrying on`)
  note(`control plane with ${count} KWOK nodes and workloads up in ${Math.round((Date.now() - started) / 1000)}s`)
  return cp
}

/**
 * Starts the service; on CLUSTER=kubernetes, falls back to the simulated cluster if this build
 * has no Kubernetes backend yet. Returns the daemon and the mode it really runs in.
 */
async function startService (lab: Lab, mode: Mode, env: NodeJS.ProcessEnv, url: string): Promise<{ service: Daemon, mode: Mode }> {
  const logPath = path.join(lab.dir, 'service.log')
  const childEnv: NodeJS.ProcessEnv = { ...env, CLUSTER: mode }
  if (mode === 'sim') delete childEnv.KUBECONFIG
  const service = launch('service', process.execPath, ['src/cli.ts'], { logPath, env: childEnv, cwd: repoRoot })
  lab.service = service
  try {
    await waitHealthy(service, `${url}/readyz`, 60_000)
    return { service, mode }
  } catch (err) {
    await service.stop()
    const text = fs.readFileSync(logPath, 'utf8')
    if (mode === 'kubernetes' && /not available in this build/.test(text)) {
      note('*** CLUSTER=kubernetes is not available in this build of the service (src/kube is not wired in yet).')
      note('*** Falling back to CLUSTER=sim: the service drains its own simulated worker-1..worker-10, NOT the KWOK nodes;')
      note('*** kubectl still shows the KWOK cluster, which nothing touches.')
      fs.renameSync(logPath, path.join(lab.dir, 'service-kubernetes-attempt.log'))
      return startService(lab, 'sim', env, url)
    }
    throw err
  }
}

function banner (lab: Lab, mode: Mode, o: { serviceUrl: string, exporterUrl: string, webhookToken: string, faultsToken: string, nodes: readonly string[], settings: Record<string, string> }) {
  const cp = lab.controlPlane
  const mon = lab.monitoring!
  const auth = `-H 'authorization: Bearer ${o.webhookToken}'`
  const kubectl = cp === undefined ? undefined : `${path.join(cp.binDir, 'kubectl')} --kubeconfig=${cp.kubeconfigPath}`
  const where = mode === 'kubernetes'
    ? `Kubernetes (KWOK): ${['app', 'data'].map(pool => `pool ${pool}: ${kwokNodes(o.nodes.length).filter(n => n.labels.pool === pool).map(n => n.name).join(', ')}`).join('; ')}`
    : `the service's SIMULATED cluster: ${o.nodes[0]} … ${o.nodes.at(-1)} (pool app 1-5, data 6-10)`
  log()
  log('=== Self-Healing Controller lab is up ===')
  log(`cluster:      ${where}`)
  log(`time scale:   rules and service ÷${defaultScale.factor} (${Object.entries(o.settings).map(([k, v]) => `${k}=${v}`).join(' ')})`)
  log(`provider:     ${process.env.PROVIDER ?? (mode === 'kubernetes' ? 'none (KWOK has no machines: a drained node stays cordoned, outcome not-performed; kubectl uncordon releases it)' : 'sim')}, REMEDIATION_LADDER=${process.env.REMEDIATION_LADDER ?? 'reboot,replace'}`)
  log()
  log('Inject a fault (fault kinds: ' + faultKinds.join(', ') + '). The rule fires ~30s later, the service drains a few seconds after:')
  log(`  curl -XPOST ${o.exporterUrl}/faults/worker-3/disk`)
  log(`  curl ${o.exporterUrl}/faults                                  # what is injected`)
  log(`  curl -XDELETE ${o.exporterUrl}/faults/worker-3                # clear it: resolves ~25-35s later`)
  log('Or skip Prometheus and hand the service an alert directly (same safety rules):')
  log(`  curl -XPOST ${o.serviceUrl}/v1/faults -H 'authorization: Bearer ${o.faultsToken}' -H 'content-type: application/json' -d '{"node":"worker-2"}'`)
  log()
  log('Watch:')
  log(`  curl -s ${auth} ${o.serviceUrl}/v1/nodes | python3 -m json.tool`)
  log(`  curl -s ${auth} ${o.serviceUrl}/v1/nodes/worker-3 | python3 -m json.tool`)
  if (kubectl !== undefined) {
    log(`  ${kubectl} get nodes -L pool,topology.kubernetes.io/zone -w`)
    log(`  ${kubectl} get pods -o wide -w`)
  }
  log(`  Prometheus:   ${mon.prometheusUrl}/alerts   (rules: ${mon.prometheusUrl}/rules, targets: ${mon.prometheusUrl}/targets)`)
  log(`  Alertmanager: ${mon.alertmanagerUrl}`)
  log(`  exporter:     ${o.exporterUrl}/nodes/worker-3/metrics/node`)
  log(`  logs:         ${path.join(lab.dir, 'service.log')}  ${mon.prometheus.logPath}  ${mon.alertmanager.logPath}`)
  log()
  log('For scripts:')
  log(`  export SHC_LAB_SERVICE=${o.serviceUrl} SHC_LAB_TOKEN=${o.webhookToken} SHC_LAB_FAULTS_TOKEN=${o.faultsToken} SHC_LAB_EXPORTER=${o.exporterUrl}` +
    (cp === undefined ? '' : ` KUBECONFIG=${cp.kubeconfigPath}`))
  log()
  log('Ctrl-C stops everything and removes the temp dirs.')
}

async function stopLab (lab: Lab) {
  // Service first: it must not act on a cluster that is going away.
  await lab.service?.stop().catch(() => {})
  await lab.monitoring?.stop().catch(() => {})
  await lab.exporter?.close().catch(() => {})
  await lab.controlPlane?.stop().catch(() => {})
  removeTempDir(lab.dir)
}

async function main (): Promise<number> {
  let args
  try {
    args = parseArgs({ options: { sim: { type: 'boolean', default: false }, nodes: { type: 'string', default: '6' }, help: { type: 'boolean', short: 'h', default: false } } }).values
  } catch (err) {
    console.error(`${(err as Error).message}\n${usage}`)
    return 2
  }
  if (args.help) {
    log(usage)
    return 0
  }
  const count = Number(args.nodes)
  if (!Number.isInteger(count) || count < 2 || count > 20) {
    console.error(`--nodes: a whole number from 2 to 20, got ${args.nodes}\n${usage}`)
    return 2
  }
  const missing = missingBinaries()
  if (missing !== undefined) {
    console.error(`lab: ${missing}`)
    return 1
  }

  const lab: Lab = { dir: makeTempDir('shc-lab-') }
  let stopping: Promise<void> | undefined
  const stop = (why: string) => {
    stopping ??= (async () => {
      note(`${why}: stopping…`)
      await stopLab(lab)
      note('stopped; every process ended, temp dirs removed')
    })()
    return stopping
  }
  let interrupted: (signal: string) => void = () => {}
  const interrupt = new Promise<string>(resolve => { interrupted = resolve })
  let up = false
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      interrupted(signal)
      // Interrupted while starting: nothing waits for `interrupt` yet.
      if (!up) void stop(signal).then(() => process.exit(130))
    })
  }

  try {
    const cp = args.sim ? undefined : await startKubernetes(lab, count)
    const webhookToken = randomBytes(16).toString('hex')
    const faultsToken = randomBytes(16).toString('hex')
    const webhookTokenFile = path.join(lab.dir, 'webhook-token')
    const faultsTokenFile = path.join(lab.dir, 'faults-token')
    fs.writeFileSync(webhookTokenFile, webhookToken, { mode: 0o600 })
    fs.writeFileSync(faultsTokenFile, faultsToken, { mode: 0o600 })

    const [servicePort, prometheusPort, alertmanagerPort] = [await freePort(), await freePort(), await freePort()]
    const serviceUrl = `http://127.0.0.1:${servicePort}`
    const settings = Object.fromEntries(Object.entries(scaledServiceSettings).map(([k, v]) => [k, process.env[k] ?? v]))
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...settings,
      HOST: '127.0.0.1',
      PORT: String(servicePort),
      WEBHOOK_TOKEN_FILE: webhookTokenFile,
      FAULTS_ENABLED: 'true',
      FAULTS_TOKEN_FILE: faultsTokenFile,
      // The service asks Prometheus and Alertmanager only when it syncs or rechecks; both start just below.
      PROMETHEUS_URL: `http://127.0.0.1:${prometheusPort}`,
      ALERTMANAGER_URL: `http://127.0.0.1:${alertmanagerPort}`
    }
    delete env.WEBHOOK_TOKEN
    delete env.FAULTS_TOKEN
    if (cp !== undefined) env.KUBECONFIG = cp.kubeconfigPath
    else delete env.KUBECONFIG
    note(`starting the service (CLUSTER=${cp === undefined ? 'sim' : 'kubernetes'})…`)
    const { mode } = await startService(lab, cp === undefined ? 'sim' : 'kubernetes', env, serviceUrl)

    const nodes = mode === 'kubernetes' ? kwokNodes(count).map(n => n.name) : Array.from({ length: 10 }, (_, i) => `worker-${i + 1}`)
    const exporter = createSignalExporter({ nodes })
    lab.exporter = exporter
    const { url: exporterUrl } = await exporter.listen()
    note('starting Prometheus and Alertmanager…')
    lab.monitoring = await startMonitoring({
      exporterUrl,
      nodes,
      webhookUrl: `${serviceUrl}/v1/alerts`,
      webhookTokenFile,
      prometheusPort,
      alertmanagerPort
    })
    banner(lab, mode, { serviceUrl, exporterUrl, webhookToken, faultsToken, nodes, settings })

    up = true
    // Until Ctrl-C; a daemon that dies on its own ends the lab, loudly.
    const daemons = [lab.service!, lab.monitoring.prometheus, lab.monitoring.alertmanager]
    const ended = await Promise.race([interrupt, ...daemons.map(d => d.exit.then(() => d))])
    if (typeof ended === 'string') {
      await stop(ended)
      return 0
    }
    note(`${ended.name} exited (${ended.exited}); last lines of ${ended.logPath}:\n${ended.logTail(20)}`)
    await stop(`${ended.name} died`)
    return 1
  } catch (err) {
    note(`failed: ${(err as Error).message}`)
    await stop('start failed')
    return 1
  }
}

// Exit explicitly: an idle keep-alive socket must not hold a stopped lab open.
process.exit(await main())
