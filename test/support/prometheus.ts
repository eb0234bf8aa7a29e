/**
 * Real Prometheus and Alertmanager for end-to-end tests and the lab, configured from the
 * project's own files: alert-rules/*.rules.yml time-scaled (scripts/rules/time-scale.ts) and
 * deploy/alertmanager/alertmanager.yml with only its URL, token file and timings changed.
 *
 *   const mon = await startMonitoring({ exporterUrl, nodes, webhookUrl, webhookTokenFile })
 *   t.teardown(() => mon.stop())
 *
 * Also the process plumbing both use: daemons in their own process group, logged to a file,
 * killed on stop(), on process exit and signals, and by a watchdog shell if this process is
 * SIGKILLed; temp dirs removed the same way. Everything binds 127.0.0.1.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml, stringify as toYaml } from 'yaml'
import { scaleDuration, timeScaleRules, type TimeScale } from '../../scripts/rules/time-scale.ts'

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
export const ruleFiles = ['node-remediation.rules.yml', 'node-paging.rules.yml'].map(f => path.join(repoRoot, 'alert-rules', f))
export const alertmanagerConfigFile = path.join(repoRoot, 'deploy', 'alertmanager', 'alertmanager.yml')

/** Binaries: Debian's names, overridable for other installs. */
export const binaries = {
  prometheus: process.env.SHC_PROMETHEUS_BIN ?? 'prometheus',
  promtool: process.env.SHC_PROMTOOL_BIN ?? 'promtool',
  alertmanager: process.env.SHC_ALERTMANAGER_BIN ?? 'prometheus-alertmanager',
  amtool: process.env.SHC_AMTOOL_BIN ?? 'amtool'
}

/** Why the e2e suite cannot run here, or undefined when every binary answers --version. */
export function missingBinaries (): string | undefined {
  const missing = Object.values(binaries).filter(bin => spawnSync(bin, ['--version'], { stdio: 'ignore' }).error !== undefined)
  return missing.length === 0
    ? undefined
    : `${missing.join(', ')} not on PATH (Debian packages prometheus and prometheus-alertmanager)`
}

/**
 * For test files: false to run, or why they are skipped. Missing binaries skip locally but fail
 * under CI=true (like the control plane suite): CI installs them, so their absence is a bug there.
 */
export function e2eSkip (): string | false {
  if (process.env.SHC_SKIP_E2E === '1') return 'SHC_SKIP_E2E=1'
  const missing = missingBinaries()
  if (missing === undefined) return false
  if (/^(1|true|yes)$/i.test(process.env.CI ?? '')) throw new Error(`${missing}; under CI=true the end-to-end tests must run`)
  return missing
}

// ---------------------------------------------------------------------------------------
// Small helpers

export const sleep = (ms: number) => new Promise<void>(resolve => setTimeout(resolve, ms))

/** Polls until probe returns a value other than undefined/false; bounded by timeoutMs. */
export async function waitUntil<T> (what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, options: { timeoutMs?: number, intervalMs?: number } = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000
  const intervalMs = options.intervalMs ?? 250
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined && value !== false) return value
    if (Date.now() + intervalMs > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(intervalMs)
  }
}

const handedOut = new Set<number>()

/**
 * A free loopback port below the kernel's ephemeral range (32768+ on Linux), so that no client
 * connection's source port can take it between now and the moment a daemon binds it.
 */
export async function freePort (): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    if (handedOut.has(port)) continue
    const free = await new Promise<boolean>(resolve => {
      const server = net.createServer()
      server.once('error', () => resolve(false))
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
    })
    if (free) {
      handedOut.add(port)
      return port
    }
  }
  throw new Error('no free port found in 20000-31999 after 200 attempts')
}

/** Status code of a GET, or 0 when nothing answers. */
export async function httpStatus (url: string, headers: Record<string, string> = {}): Promise<number> {
  try {
    const res = await fetch(url, { headers, signal: AbortSignal.timeout(2000) })
    await res.arrayBuffer()
    return res.status
  } catch {
    return 0
  }
}

function lastLines (text: string, n: number): string {
  return text.trimEnd().split('\n').slice(-n).join('\n')
}

// ---------------------------------------------------------------------------------------
// Processes and temp dirs, cleaned up whatever happens to this process

export type Daemon = {
  name: string
  pid: number
  logPath: string
  /** Set once the process has exited: how. */
  readonly exited: string | undefined
  exit: Promise<void>
  /** SIGTERM to the whole group, SIGKILL after graceMs. Idempotent. */
  stop (graceMs?: number): Promise<void>
  logTail (lines?: number): string
}

const live = new Set<{ pid: number, exited: () => boolean }>()
const tempDirs = new Set<string>()
let registryDir: string | undefined
let watchdog: ChildProcess | undefined
let hooksInstalled = false

function writeRegistry () {
  if (registryDir === undefined) return
  fs.writeFileSync(path.join(registryDir, 'pgids'), [...live].map(p => `${p.pid}\n`).join(''))
  fs.writeFileSync(path.join(registryDir, 'dirs'), [...tempDirs].map(d => `${d}\n`).join(''))
}

/**
 * Last line of defence when this process dies without running any hook (SIGKILL, OOM): a shell
 * that waits for it to vanish, then kills the recorded process groups and removes the dirs.
 */
function ensureWatchdog () {
  if (watchdog !== undefined) return
  registryDir = fs.mkdtempSync(path.join(os.tmpdir(), 'shc-harness-'))
  writeRegistry()
  const script = 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; ' +
    'for g in $(cat "$2/pgids" 2>/dev/null); do kill -KILL "-$g" 2>/dev/null; done; ' +
    'while read -r d; do [ -n "$d" ] && rm -rf "$d"; done < "$2/dirs"; rm -rf "$2"'
  watchdog = spawn('sh', ['-c', script, 'shc-harness-watchdog', String(process.pid), registryDir], { detached: true, stdio: 'ignore' })
  watchdog.unref()
}

function killGroup (pid: number, signal: NodeJS.Signals) {
  try {
    process.kill(-pid, signal)
  } catch {
    // ESRCH: already gone
  }
}

/** Synchronous, for 'exit' and signal handlers: kill everything, remove every temp dir. */
export function killAllSync () {
  for (const p of live) if (!p.exited()) killGroup(p.pid, 'SIGKILL')
  live.clear()
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true })
  tempDirs.clear()
  if (watchdog?.pid !== undefined) killGroup(watchdog.pid, 'SIGKILL')
  watchdog = undefined
  if (registryDir !== undefined) fs.rmSync(registryDir, { recursive: true, force: true })
  registryDir = undefined
}

function onSignal (signal: NodeJS.Signals) {
  killAllSync()
  process.off(signal, onSignal)
  // Die of the signal as we would have without this hook, unless someone else handles it.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
}

function installHooks () {
  if (hooksInstalled) return
  hooksInstalled = true
  process.on('exit', killAllSync)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal)
}

/** A temp dir removed by removeTempDir(), at exit, or by the watchdog. */
export function makeTempDir (prefix: string): string {
  installHooks()
  ensureWatchdog()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  tempDirs.add(dir)
  writeRegistry()
  return dir
}

export function removeTempDir (dir: string) {
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 })
  tempDirs.delete(dir)
  writeRegistry()
}

/** Starts a long-running process in its own process group, stdout and stderr to logPath. */
export function launch (name: string, file: string, args: string[], options: { logPath: string, env?: NodeJS.ProcessEnv, cwd?: string }): Daemon {
  installHooks()
  ensureWatchdog()
  const fd = fs.openSync(options.logPath, 'a')
  let child: ChildProcess
  try {
    child = spawn(file, args, { detached: true, stdio: ['ignore', fd, fd], env: options.env ?? process.env, cwd: options.cwd ?? repoRoot })
  } finally {
    fs.closeSync(fd)
  }
  let exited: string | undefined
  const exit = new Promise<void>(resolve => {
    child.once('exit', (code, signal) => {
      exited ??= signal ?? `code ${code}`
      resolve()
    })
    child.once('error', err => {
      exited ??= `failed to start: ${err.message}`
      resolve()
    })
  })
  // Never keep the parent alive; stop() or the hooks end it.
  child.unref()
  const pid = child.pid ?? -1
  const entry = { pid, exited: () => exited !== undefined }
  if (pid > 0) {
    live.add(entry)
    writeRegistry()
  }
  void exit.then(() => {
    live.delete(entry)
    writeRegistry()
  })
  const logTail = (lines = 30) => {
    try {
      return lastLines(fs.readFileSync(options.logPath, 'utf8'), lines)
    } catch {
      return '(no log)'
    }
  }
  return {
    name,
    pid,
    logPath: options.logPath,
    get exited () { return exited },
    exit,
    logTail,
    async stop (graceMs = 5000) {
      if (exited !== undefined || pid <= 0) return exit
      killGroup(pid, 'SIGTERM')
      const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs)
      await exit
      clearTimeout(timer)
      // Anything the daemon itself started dies with the group.
      killGroup(pid, 'SIGKILL')
    }
  }
}

/** Waits until url answers 200; fails at once, with the log tail, if the daemon exits. */
export async function waitHealthy (daemon: Daemon, url: string, timeoutMs = 30_000, headers: Record<string, string> = {}): Promise<void> {
  try {
    await waitUntil(`${daemon.name} to answer 200 on ${url}`, async () => {
      if (daemon.exited !== undefined) throw new Error(`${daemon.name} exited (${daemon.exited})`)
      return (await httpStatus(url, headers)) === 200
    }, { timeoutMs, intervalMs: 200 })
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- last lines of ${daemon.logPath} ---\n${daemon.logTail()}`)
  }
}

/** Runs a short command to completion (without blocking the event loop); throws with its output when it fails. */
function check (file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${file} ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`))
      else resolve(`${stdout}${stderr}`)
    })
  })
}

// ---------------------------------------------------------------------------------------
// Configuration

/** 30s scrape → 1s scrape: the factor that keeps the rules' sample-count guard at the same N. */
export const defaultScale: TimeScale = { factor: 30, scrapeInterval: '1s' }

/** Writes the time-scaled rule files into dir and checks them with promtool. Returns their paths. */
export async function writeScaledRules (dir: string, scale: TimeScale = defaultScale): Promise<string[]> {
  const written = ruleFiles.map(file => {
    const target = path.join(dir, path.basename(file))
    const origin = path.relative(repoRoot, file)
    fs.writeFileSync(target, timeScaleRules(fs.readFileSync(file, 'utf8'), scale, origin).text)
    return target
  })
  await check(binaries.promtool, ['check', 'rules', ...written])
  return written
}

export type AlertmanagerTimings = Partial<Record<'group_wait' | 'group_interval' | 'repeat_interval', string>>

/**
 * deploy/alertmanager/alertmanager.yml with the controller receiver's URL and bearer token file
 * replaced and every route timing divided by factor (overrides win). Nothing else changes.
 */
export function alertmanagerConfig (options: { webhookUrl: string, tokenFile: string, factor: number, timings?: AlertmanagerTimings }): string {
  type Route = Record<string, unknown> & { routes?: Route[] }
  type Receiver = { name: string, webhook_configs?: Array<{ url?: string, http_config?: { authorization?: { credentials_file?: string } } }> }
  const config = parseYaml(fs.readFileSync(alertmanagerConfigFile, 'utf8')) as { route: Route, receivers: Receiver[] }
  const receiver = config.receivers.find(r => r.name === 'self-healing-controller')
  const webhook = receiver?.webhook_configs?.[0]
  if (webhook?.http_config?.authorization === undefined) throw new Error(`${alertmanagerConfigFile}: no self-healing-controller webhook with an authorization to adapt`)
  webhook.url = options.webhookUrl
  webhook.http_config.authorization.credentials_file = options.tokenFile
  const timingKeys = ['group_wait', 'group_interval', 'repeat_interval'] as const
  const scaleRoute = (route: Route) => {
    for (const key of timingKeys) {
      if (typeof route[key] === 'string') route[key] = scaleDuration(route[key], options.factor)
      const override = receiver !== undefined && route.receiver === receiver.name ? options.timings?.[key] : undefined
      if (override !== undefined) route[key] = override
    }
    route.routes?.forEach(scaleRoute)
  }
  scaleRoute(config.route)
  return `# GENERATED from deploy/alertmanager/alertmanager.yml for tests and the lab: URL, token file and timings changed.\n${toYaml(config)}`
}

export type PrometheusConfigOptions = {
  exporterAddress: string
  nodes: readonly string[]
  alertmanagerAddress: string
  ruleFiles: string[]
  scrapeInterval: string
  evaluationInterval: string
  /** host:port of the service, scraped on /metrics as job self-healing-controller when given. */
  controllerAddress?: string
}

/**
 * One target per node and job, each labelled node=<name> at scrape time: what the metric contract
 * asks of a real cluster's relabeling (__meta_kubernetes_pod_node_name → node). The service itself,
 * when its address is given, as the ServiceMonitor would scrape it.
 */
export function prometheusConfig (o: PrometheusConfigOptions): string {
  const job = (name: string, kind: 'node' | 'app') => ({
    job_name: name,
    static_configs: o.nodes.map(node => ({
      targets: [o.exporterAddress],
      labels: { node, __metrics_path__: `/nodes/${encodeURIComponent(node)}/metrics/${kind}` }
    }))
  })
  return toYaml({
    global: { scrape_interval: o.scrapeInterval, scrape_timeout: o.scrapeInterval, evaluation_interval: o.evaluationInterval },
    rule_files: o.ruleFiles,
    alerting: { alertmanagers: [{ static_configs: [{ targets: [o.alertmanagerAddress] }] }] },
    scrape_configs: [
      job('node-exporter', 'node'),
      job('app', 'app'),
      ...(o.controllerAddress === undefined ? [] : [{ job_name: 'self-healing-controller', static_configs: [{ targets: [o.controllerAddress] }] }])
    ]
  })
}

// ---------------------------------------------------------------------------------------
// Prometheus + Alertmanager

export type MonitoringOptions = {
  /** http://127.0.0.1:PORT of the signal exporter. */
  exporterUrl: string
  nodes: readonly string[]
  /** The service's POST /v1/alerts URL. */
  webhookUrl: string
  /** File holding the webhook bearer token Alertmanager sends. */
  webhookTokenFile: string
  /** Default defaultScale (÷30, 1s scrape). */
  scale?: TimeScale
  /** Default: the scrape interval. */
  evaluationInterval?: string
  alertmanagerTimings?: AlertmanagerTimings
  /** host:port of the service, to scrape its own metrics too (default: not scraped). */
  controllerAddress?: string
  prometheusPort?: number
  alertmanagerPort?: number
  startTimeoutMs?: number
}

export type PromSample = { metric: Record<string, string>, value: [number, string] }

export type Monitoring = Awaited<ReturnType<typeof startMonitoring>>

export async function startMonitoring (o: MonitoringOptions) {
  const scale = o.scale ?? defaultScale
  const dir = makeTempDir('shc-monitoring-')
  const daemons: Daemon[] = []
  const stop = async () => {
    await Promise.all(daemons.map(d => d.stop()))
    removeTempDir(dir)
  }
  try {
    const [promPort, amPort] = [o.prometheusPort ?? await freePort(), o.alertmanagerPort ?? await freePort()]
    fs.mkdirSync(path.join(dir, 'rules'))
    const rules = await writeScaledRules(path.join(dir, 'rules'), scale)

    const amConfigPath = path.join(dir, 'alertmanager.yml')
    fs.writeFileSync(amConfigPath, alertmanagerConfig({ webhookUrl: o.webhookUrl, tokenFile: o.webhookTokenFile, factor: scale.factor, timings: o.alertmanagerTimings }))
    await check(binaries.amtool, ['check-config', amConfigPath])
    const promConfigPath = path.join(dir, 'prometheus.yml')
    fs.writeFileSync(promConfigPath, prometheusConfig({
      exporterAddress: new URL(o.exporterUrl).host,
      nodes: o.nodes,
      alertmanagerAddress: `127.0.0.1:${amPort}`,
      ruleFiles: rules,
      scrapeInterval: scale.scrapeInterval,
      evaluationInterval: o.evaluationInterval ?? scale.scrapeInterval,
      controllerAddress: o.controllerAddress
    }))
    await check(binaries.promtool, ['check', 'config', promConfigPath])

    const alertmanager = launch('alertmanager', binaries.alertmanager, [
      `--config.file=${amConfigPath}`,
      `--storage.path=${path.join(dir, 'alertmanager-data')}`,
      `--web.listen-address=127.0.0.1:${amPort}`,
      // Empty: no gossip cluster (it would bind 0.0.0.0:9094 and wait for peers).
      '--cluster.listen-address=',
      '--log.level=debug'
    ], { logPath: path.join(dir, 'alertmanager.log') })
    daemons.push(alertmanager)
    const prometheus = launch('prometheus', binaries.prometheus, [
      `--config.file=${promConfigPath}`,
      `--storage.tsdb.path=${path.join(dir, 'prometheus-data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`
    ], { logPath: path.join(dir, 'prometheus.log') })
    daemons.push(prometheus)
    const prometheusUrl = `http://127.0.0.1:${promPort}`
    const alertmanagerUrl = `http://127.0.0.1:${amPort}`
    const timeoutMs = o.startTimeoutMs ?? 30_000
    await Promise.all([
      waitHealthy(alertmanager, `${alertmanagerUrl}/-/ready`, timeoutMs),
      waitHealthy(prometheus, `${prometheusUrl}/-/ready`, timeoutMs)
    ])

    /** Instant query; throws on anything but a vector answer. */
    const query = async (expr: string): Promise<PromSample[]> => {
      const url = new URL('/api/v1/query', prometheusUrl)
      url.searchParams.set('query', expr)
      const res = await fetch(url, { signal: AbortSignal.timeout(5000) })
      const body = await res.json() as { status: string, error?: string, data?: { resultType: string, result: PromSample[] } }
      if (body.status !== 'success' || body.data?.resultType !== 'vector') throw new Error(`query ${expr}: ${body.error ?? JSON.stringify(body)}`)
      return body.data.result
    }
    /** Alerts Alertmanager holds (API v2). */
    const alertmanagerAlerts = async (): Promise<Array<{ labels: Record<string, string>, status: { state: string }, startsAt: string }>> => {
      const res = await fetch(`${alertmanagerUrl}/api/v2/alerts`, { signal: AbortSignal.timeout(5000) })
      if (!res.ok) throw new Error(`Alertmanager answered ${res.status}`)
      return await res.json() as Array<{ labels: Record<string, string>, status: { state: string }, startsAt: string }>
    }
    return {
      dir,
      prometheusUrl,
      alertmanagerUrl,
      ruleFiles: rules,
      prometheus,
      alertmanager,
      query,
      alertmanagerAlerts,
      /** SIGTERM, then SIGKILL at once: Prometheus is gone when this resolves. */
      stopPrometheus: () => prometheus.stop(0),
      stop,
      logs: () => `--- prometheus ---\n${prometheus.logTail(15)}\n--- alertmanager ---\n${alertmanager.logTail(15)}`
    }
  } catch (err) {
    await stop()
    throw err
  }
}
