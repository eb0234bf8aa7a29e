import { pino, type Logger } from 'pino'
import { createAlertmanagerSource } from './alerts/alertmanager.ts'
import { createPrometheusCheck } from './alerts/prometheus.ts'
import type { Cluster } from './cluster.ts'
import { ConfigError, describeConfig, engineConfigOf, helpText, parseConfig, policyOf, resolveCredentials, type ServiceConfig } from './config.ts'
import { buildApp } from './http/app.ts'
import { createShadowCluster, dryRunProvider } from './dry-run.ts'
import { createMetrics } from './metrics.ts'
import { connectKubernetes } from './kube/connect.ts'
import { startLeaderElection, type Elector } from './kube/lease.ts'
import { createProvider } from './providers/index.ts'
import type { Provider } from './providers/provider.ts'
import { withRetries } from './providers/retry.ts'
import { createEngine, type Engine } from './remediation/engine.ts'
import { startSimulation } from './sim/index.ts'

/** Composition root: configuration → cluster and provider → engine → HTTP. Nothing else lives here. */

const shutdownDeadlineMs = 4_500

type Connected = { cluster: Cluster, provider: Provider, elector?: (engine: Engine) => Elector, close: () => void }

async function connect (config: ServiceConfig, log: Logger): Promise<Connected> {
  if (config.cluster === 'sim') {
    if (config.kubeconfig !== undefined) log.warn('KUBECONFIG is ignored: CLUSTER=sim (set CLUSTER=kubernetes to use it)')
    const sim = startSimulation({ poolLabel: config.poolLabel, zoneLabel: config.zoneLabel, excludeAnnotation: `${config.annotationPrefix}/drain-exclude` }, log)
    return { ...sim, close: () => sim.cluster.close() }
  }
  const { cluster, kubeConfig, identity } = await connectKubernetes(config, log)
  const connected: Connected = { cluster, provider: createProvider(config, kubeConfig), close: () => cluster.close() }
  // A dry run never acts, so it needs no lease (and makes no writes at all).
  if (config.leaderElection && !config.dryRun) {
    connected.elector = engine => startLeaderElection({
      kubeConfig,
      namespace: config.leaseNamespace,
      name: config.leaseName,
      identity,
      leaseDurationMs: config.leaseDuration,
      renewDeadlineMs: config.leaseRenewDeadline,
      retryPeriodMs: config.leaseRetryPeriod,
      log,
      onStartedLeading: () => { void engine.setLeader(true) },
      onStoppedLeading: () => engine.setLeader(false),
      onObserved: state => engine.observeControllerState(state)
    })
  }
  return connected
}

export async function main (argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  let config: ServiceConfig
  let credentials
  let warnings: string[]
  try {
    const parsed = parseConfig(argv, env)
    if (parsed === 'help') {
      console.log(helpText())
      return 0
    }
    ({ config, credentials, warnings } = resolveCredentials(parsed))
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    console.error(`self-healing-controller: ${err.message}\nRun with --help to list every option.`)
    return 2
  }
  const log = pino({ name: 'self-healing-controller', level: config.logLevel })
  for (const warning of warnings) log.warn(warning)
  log.info({ config: describeConfig(config) }, 'starting')

  let connected: Connected
  try {
    connected = await connect(config, log)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    log.fatal(err.message)
    return 2
  }
  const { elector: elect, close } = connected
  // A dry run is the same engine on a shadow of the cluster: it reads, it never writes.
  const cluster = config.dryRun ? createShadowCluster(connected.cluster, log) : connected.cluster
  const provider = config.dryRun ? dryRunProvider(connected.provider) : withRetries(connected.provider, { deadlineMs: config.providerTimeout, initialDelayMs: 1000, maxDelayMs: 30_000 })
  let elector: Elector | undefined
  const metrics = createMetrics()
  metrics.dryRun.set(config.dryRun ? 1 : 0)
  const policy = policyOf(config)
  const engine = createEngine({
    cluster,
    provider,
    metrics,
    log,
    config: engineConfigOf(config),
    ...(config.prometheusUrl === undefined ? {} : { prometheusCheck: createPrometheusCheck(config.prometheusUrl, config.nodeLabels) }),
    ...(config.alertmanagerUrl === undefined ? {} : { alertmanager: createAlertmanagerSource(config.alertmanagerUrl) }),
    startAsLeader: elect === undefined,
    leaseValid: () => elector?.leaseValid() ?? true
  })
  const app = await buildApp({
    engine,
    metrics,
    policy,
    credentials: credentials.webhook === undefined ? undefined : credentials,
    faultsEnabled: config.faultsEnabled,
    dryRun: config.dryRun,
    bodyLimit: config.bodyLimit,
    ready: async () => {
      await cluster.listNodes()
      return engine.recovered
        ? { ready: true, reason: `${cluster.kind} cluster reachable; state recovered` }
        : { ready: false, reason: 'recovering persisted state' }
    }
  }, { loggerInstance: log })

  engine.start()
  elector = elect?.(engine)
  await app.listen({ host: config.host, port: config.port })

  let stopping = false
  const stop = async (signal: string) => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'stopping: no new work; in-flight remediations resume from their persisted state on the next start')
    // Well within terminationGracePeriodSeconds: every step was persisted before it was acted on,
    // so cutting a slow API call short loses nothing.
    const deadline = setTimeout(() => {
      log.warn({ afterMs: shutdownDeadlineMs }, 'shutdown did not finish in time; exiting anyway (nothing is half-written)')
      process.exit(0)
    }, shutdownDeadlineMs)
    deadline.unref()
    // All at once: the engine stops acting (a notification under way answers 503 and is
    // redelivered), the elector hands the Lease back, the server finishes its answers.
    await Promise.all([engine.stop(), elector?.stop(), app.close()])
    close()
    clearTimeout(deadline)
  }
  process.once('SIGTERM', () => { void stop('SIGTERM') })
  process.once('SIGINT', () => { void stop('SIGINT') })
  return 0
}
