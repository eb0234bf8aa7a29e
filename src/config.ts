import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { Type, type Static, type TSchema } from 'typebox'
import { Value } from 'typebox/value'
import { formatDuration, parseDuration } from './duration.ts'
import { knownDisruptorTaints, parseBudget, parseDisruptorTaint } from './policy/budget.ts'
import type { PolicyConfig } from './policy/config.ts'
import { parseWindows } from './policy/window.ts'
import type { EngineConfig } from './remediation/engine.ts'
import type { RequestedAction } from './remediation/record.ts'

/**
 * Configuration from environment variables and CLI flags (a flag wins). One table says, for every
 * option, its variable, its flag, its default and what it does: `--help` prints it, and a bad
 * value stops the start with a message naming the option.
 */
const action = Type.Union([Type.Literal('reboot'), Type.Literal('replace'), Type.Literal('none')])
const duration = Type.Integer({ minimum: 0 })

type Kind = 'string' | 'int' | 'number' | 'bool' | 'duration' | 'list'
type Option = { schema: TSchema, env: string, kind: Kind, default?: string, help: string }

export const options = {
  host: { schema: Type.Optional(Type.String({ minLength: 1 })), env: 'HOST', kind: 'string', help: 'Address to listen on. Default 0.0.0.0; 127.0.0.1 when running unauthenticated on the simulated cluster.' },
  port: { schema: Type.Integer({ minimum: 0, maximum: 65535 }), env: 'PORT', kind: 'int', default: '8080', help: 'Port to listen on.' },
  webhookToken: { schema: Type.Optional(Type.String({ minLength: 1 })), env: 'WEBHOOK_TOKEN', kind: 'string', help: 'Bearer token Alertmanager must send (prefer WEBHOOK_TOKEN_FILE).' },
  webhookTokenFile: { schema: Type.Optional(Type.String({ minLength: 1 })), env: 'WEBHOOK_TOKEN_FILE', kind: 'string', help: 'File holding the webhook bearer token.' },
  insecureNoAuth: { schema: Type.Boolean(), env: 'INSECURE_NO_AUTH', kind: 'bool', default: 'false', help: 'Run without a token on a real cluster. Never do this outside a lab.' },
  faultsEnabled: { schema: Type.Boolean(), env: 'FAULTS_ENABLED', kind: 'bool', default: 'false', help: 'Enable POST /v1/faults (manual fault injection).' },
  faultsToken: { schema: Type.Optional(Type.String({ minLength: 1 })), env: 'FAULTS_TOKEN', kind: 'string', help: 'Bearer token for POST /v1/faults (prefer FAULTS_TOKEN_FILE).' },
  faultsTokenFile: { schema: Type.Optional(Type.String({ minLength: 1 })), env: 'FAULTS_TOKEN_FILE', kind: 'string', help: 'File holding the fault-injection bearer token.' },
  adminToken: { schema: Type.Optional(Type.String({ minLength: 1 })), env: 'ADMIN_TOKEN', kind: 'string', help: 'Bearer token for the operator\'s controls (PUT/DELETE /v1/pause/…); prefer ADMIN_TOKEN_FILE. Without it, pausing is only possible through kubectl on the Lease.' },
  adminTokenFile: { schema: Type.Optional(Type.String({ minLength: 1 })), env: 'ADMIN_TOKEN_FILE', kind: 'string', help: 'File holding the admin bearer token.' },
  remediationWindows: { schema: Type.String(), env: 'REMEDIATION_WINDOWS', kind: 'string', default: '', help: 'Maintenance windows, e.g. "Mon-Fri 08:00-18:00 Europe/Berlin; Sat 10:00-12:00 Europe/Berlin": outside every window nothing new starts. Empty: always.' },
  dryRun: { schema: Type.Boolean(), env: 'DRY_RUN', kind: 'bool', default: 'false', help: 'Compute and report every decision; change nothing in the cluster.' },
  logLevel: { schema: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']), env: 'LOG_LEVEL', kind: 'string', default: 'info', help: 'fatal, error, warn, info, debug or trace.' },
  cluster: { schema: Type.Union([Type.Literal('sim'), Type.Literal('kubernetes')]), env: 'CLUSTER', kind: 'string', default: 'sim', help: 'sim (an in-memory demo cluster) or kubernetes (explicit, real).' },
  kubeconfig: { schema: Type.Optional(Type.String({ minLength: 1 })), env: 'KUBECONFIG', kind: 'string', help: 'Kubeconfig for CLUSTER=kubernetes; in-cluster credentials when unset.' },
  maxConcurrentDrains: { schema: Type.Integer({ minimum: 1, maximum: 1000 }), env: 'MAX_CONCURRENT_DRAINS', kind: 'int', default: '1', help: 'Nodes held by us at once, cluster-wide: out of service because of us, or back but not yet proven fixed, or replaced and not yet replaced back.' },
  poolMaxUnavailable: { schema: Type.String({ pattern: '^(?:[1-9]\\d*|(?:100|[1-9]\\d?)%)$' }), env: 'POOL_MAX_UNAVAILABLE', kind: 'string', default: '20%', help: 'Per pool, and per zone within it: nodes that may be out of service (whoever caused it) before no remediation starts there. A count or a percentage of the pool (rounded down, never below 1), like a PodDisruptionBudget\'s maxUnavailable.' },
  disruptionTaints: { schema: Type.Array(Type.String({ minLength: 1 })), env: 'DISRUPTION_TAINTS', kind: 'list', default: '', help: 'More taint keys (KEY, or PREFIX* for a family) that mean another controller is taking a node away, besides the known ones (Karpenter, cluster-autoscaler, NTH, out-of-service, cloud shutdown).' },
  verifyDwell: { schema: duration, env: 'VERIFY_DWELL', kind: 'duration', default: '5m', help: 'A fix is proven (and its slot freed) once the node has been Ready and schedulable this long without a re-fire.' },
  replaceTimeout: { schema: Type.Integer({ minimum: 1 }), env: 'REPLACE_TIMEOUT', kind: 'duration', default: '30m', help: 'How long the cloud has to remove a node whose machine is replaced elsewhere (and to make its pool whole again); then outcome replace-timeout.' },
  remediationLadder: { schema: Type.Array(action, { minItems: 1 }), env: 'REMEDIATION_LADDER', kind: 'list', default: 'reboot,replace', help: 'What remediation="drain" means, rung by rung, for repeat remediations of one node within LADDER_WINDOW; past the last rung the node is quarantined.' },
  ladderWindow: { schema: Type.Integer({ minimum: 1 }), env: 'LADDER_WINDOW', kind: 'duration', default: '24h', help: 'Remediations of one node within this window climb the ladder.' },
  stormSettle: { schema: duration, env: 'STORM_SETTLE', kind: 'duration', default: '30s', help: 'No remediation starts until the fleet has had no new alerting node this long (keep it at least Alertmanager\'s group_wait).' },
  alertTtl: { schema: Type.Integer({ minimum: 60_000 }), env: 'ALERT_TTL', kind: 'duration', default: '2h10m', help: 'A firing alert not repeated by Alertmanager within this long is stale and counts for nothing. Keep it above twice your repeat_interval plus group_interval.' },
  cooldown: { schema: duration, env: 'COOLDOWN', kind: 'duration', default: '30m', help: 'Per node: no new remediation this long after one ends.' },
  poolSpacing: { schema: duration, env: 'POOL_SPACING', kind: 'duration', default: '5m', help: 'Per pool: minimum time between two remediation starts.' },
  nodeLabels: { schema: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }), env: 'NODE_LABELS', kind: 'list', default: 'node,kubernetes_node', help: 'Alert labels that may carry the node name, in order.' },
  optInLabel: { schema: Type.String({ minLength: 1 }), env: 'OPT_IN_LABEL', kind: 'string', default: 'remediation', help: 'Alert label that opts in: drain (then REMEDIATION_LADDER), reboot or replace.' },
  annotationPrefix: { schema: Type.String({ pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$', maxLength: 253 }), env: 'ANNOTATION_PREFIX', kind: 'string', default: 'self-healing-controller.io', help: 'Prefix of the Node annotations that hold the persisted state.' },
  poolLabel: { schema: Type.String({ minLength: 1 }), env: 'POOL_LABEL', kind: 'string', default: 'pool', help: 'Node label naming its pool (circuit breaker and spacing scope).' },
  zoneLabel: { schema: Type.String({ minLength: 1 }), env: 'ZONE_LABEL', kind: 'string', default: 'topology.kubernetes.io/zone', help: 'Node label naming its zone.' },
  clockSkew: { schema: duration, env: 'CLOCK_SKEW', kind: 'duration', default: '1m', help: 'How far in the future an alert startsAt may be before it is ignored.' },
  minFiringAge: { schema: duration, env: 'MIN_FIRING_AGE', kind: 'duration', default: '2m', help: 'Minimum time an alert has fired (from startsAt) before a drain starts.' },
  flapWindow: { schema: Type.Integer({ minimum: 1 }), env: 'FLAP_WINDOW', kind: 'duration', default: '1h', help: 'Window in which re-fires of a node\'s alerts are counted.' },
  flapMaxRefires: { schema: Type.Integer({ minimum: 0 }), env: 'FLAP_MAX_REFIRES', kind: 'int', default: '2', help: 'More re-fires than this within FLAP_WINDOW hold the node instead of draining it.' },
  breakerThreshold: { schema: Type.Number({ exclusiveMinimum: 0, maximum: 1 }), env: 'BREAKER_THRESHOLD', kind: 'number', default: '0.2', help: 'Share of a pool (or of a zone in it) alerting at which no new drains start there.' },
  breakerMinNodes: { schema: Type.Integer({ minimum: 1 }), env: 'BREAKER_MIN_NODES', kind: 'int', default: '2', help: 'The breaker needs at least this many alerting nodes (one sick node never trips it).' },
  breakerSettle: { schema: duration, env: 'BREAKER_SETTLE', kind: 'duration', default: '10m', help: 'How long the share must stay below the threshold before the breaker closes.' },
  drainTimeout: { schema: Type.Integer({ minimum: 1 }), env: 'DRAIN_TIMEOUT', kind: 'duration', default: '15m', help: 'Deadline of one drain; then outcome drain-timeout.' },
  rebootTimeout: { schema: Type.Integer({ minimum: 1 }), env: 'REBOOT_TIMEOUT', kind: 'duration', default: '15m', help: 'How long a rebooted node has to report Ready on a new boot; until then it stays cordoned, after it outcome reboot-timeout.' },
  evictionConcurrency: { schema: Type.Integer({ minimum: 1, maximum: 100 }), env: 'EVICTION_CONCURRENCY', kind: 'int', default: '5', help: 'Evictions in flight per drain.' },
  evictionBackoff: { schema: Type.Integer({ minimum: 1 }), env: 'EVICTION_BACKOFF', kind: 'duration', default: '1s', help: 'First wait after a refused eviction (doubles; Retry-After wins when longer).' },
  evictionBackoffMax: { schema: Type.Integer({ minimum: 1 }), env: 'EVICTION_BACKOFF_MAX', kind: 'duration', default: '30s', help: 'Longest wait between eviction attempts of one pod.' },
  forceDeleteOnTimeout: { schema: Type.Boolean(), env: 'FORCE_DELETE_ON_TIMEOUT', kind: 'bool', default: 'false', help: 'At the drain deadline, delete remaining pods with grace 0 (bypasses PodDisruptionBudgets; never a StatefulSet pod on a Ready node).' },
  evictUnmanagedPods: { schema: Type.Boolean(), env: 'EVICT_UNMANAGED_PODS', kind: 'bool', default: 'false', help: 'Like kubectl drain --force: evict pods no controller would recreate. Off: such a node is not started.' },
  deleteEmptydirData: { schema: Type.Boolean(), env: 'DELETE_EMPTYDIR_DATA', kind: 'bool', default: 'false', help: 'Like kubectl drain --delete-emptydir-data: evict pods whose emptyDir data is lost with them. Off: such a node is not started.' },
  allowLocalDataLoss: { schema: Type.Boolean(), env: 'ALLOW_LOCAL_DATA_LOSS', kind: 'bool', default: 'false', help: 'Replace a node whose pods keep data on local or hostPath PersistentVolumes (the data is destroyed). Off: such a node may be rebooted, never replaced.' },
  capacityCheck: { schema: Type.Boolean(), env: 'CAPACITY_CHECK', kind: 'bool', default: 'true', help: 'Before cordoning, check (first fit) that the evictable pods fit on the remaining schedulable, Ready nodes.' },
  prometheusUrl: { schema: Type.Optional(Type.String({ pattern: '^https?://' })), env: 'PROMETHEUS_URL', kind: 'string', help: 'When set, a drain starts only if Prometheus still reports the alert firing.' },
  alertmanagerUrl: { schema: Type.Optional(Type.String({ pattern: '^https?://' })), env: 'ALERTMANAGER_URL', kind: 'string', help: 'Recommended. The leader reads GET /api/v2/alerts every ALERTMANAGER_SYNC and right before a drain: an alert Alertmanager no longer holds active (resolved, silenced, inhibited) stops counting; unreachable, no drain starts.' },
  alertmanagerSync: { schema: Type.Integer({ minimum: 100 }), env: 'ALERTMANAGER_SYNC', kind: 'duration', default: '1m', help: 'How often the leader reads Alertmanager\'s alerts.' },
  provider: { schema: Type.Union([Type.Literal('sim'), Type.Literal('none'), Type.Literal('aws'), Type.Literal('clusterapi'), Type.Literal('karpenter')]), env: 'PROVIDER', kind: 'string', help: 'sim, none, aws, clusterapi or karpenter. Default sim on the simulated cluster, none otherwise.' },
  providerTimeout: { schema: Type.Integer({ minimum: 1 }), env: 'PROVIDER_TIMEOUT', kind: 'duration', default: '10m', help: 'Deadline of one provider remediation, retries included.' },
  bodyLimit: { schema: Type.Integer({ minimum: 1024 }), env: 'BODY_LIMIT', kind: 'int', default: '5242880', help: 'Largest accepted request body in bytes.' },
  identity: { schema: Type.Optional(Type.String({ minLength: 1 })), env: 'POD_NAME', kind: 'string', help: 'This replica\'s name in the Lease and in Events. Default: the host name.' },
  leaderElection: { schema: Type.Boolean(), env: 'LEADER_ELECTION', kind: 'bool', default: 'true', help: 'On Kubernetes, act only while holding the Lease (run 2 replicas). Any replica accepts webhooks.' },
  leaseNamespace: { schema: Type.String({ minLength: 1 }), env: 'LEASE_NAMESPACE', kind: 'string', default: 'self-healing-controller', help: 'Namespace of the leader-election Lease.' },
  leaseName: { schema: Type.String({ minLength: 1 }), env: 'LEASE_NAME', kind: 'string', default: 'self-healing-controller', help: 'Name of the leader-election Lease.' },
  leaseDuration: { schema: Type.Integer({ minimum: 1000 }), env: 'LEASE_DURATION', kind: 'duration', default: '15s', help: 'How long a Lease not renewed stays with its holder.' },
  leaseRenewDeadline: { schema: Type.Integer({ minimum: 500 }), env: 'LEASE_RENEW_DEADLINE', kind: 'duration', default: '10s', help: 'A leader that cannot renew for this long stops acting (shorter than LEASE_DURATION).' },
  leaseRetryPeriod: { schema: Type.Integer({ minimum: 100 }), env: 'LEASE_RETRY_PERIOD', kind: 'duration', default: '2s', help: 'How often the Lease is renewed or tried.' },
  awsRegion: { schema: Type.Optional(Type.String({ minLength: 1 })), env: 'AWS_REGION', kind: 'string', help: 'Region for PROVIDER=aws. Default: the AWS SDK\'s own chain.' },
  awsAllowReplaceOutsideAsg: { schema: Type.Boolean(), env: 'AWS_ALLOW_REPLACE_OUTSIDE_ASG', kind: 'bool', default: 'false', help: 'Let PROVIDER=aws terminate instances outside an Auto Scaling group (nothing replaces them).' },
  reconcileInterval: { schema: Type.Integer({ minimum: 100 }), env: 'RECONCILE_INTERVAL', kind: 'duration', default: '1m', help: 'Fallback: the longest time between two reconcile passes. Changes and due times (cooldowns, dwells, deadlines, expiries) wake the engine on time.' },
  resyncInterval: { schema: Type.Integer({ minimum: 1000 }), env: 'RESYNC_INTERVAL', kind: 'duration', default: '5m', help: 'Safety net: how often every node is re-read from the watch cache and re-examined.' },
  writeConcurrency: { schema: Type.Integer({ minimum: 1, maximum: 100 }), env: 'WRITE_CONCURRENCY', kind: 'int', default: '16', help: 'Node writes in flight at once (a storm is absorbed in seconds without flooding the API server).' },
  writeQps: { schema: Type.Integer({ minimum: 1, maximum: 10000 }), env: 'WRITE_QPS', kind: 'int', default: '500', help: 'Client-side limit on API writes per second (patches, evictions, Events), as client-go\'s QPS; Lease renewals are not limited.' },
  writeBurst: { schema: Type.Integer({ minimum: 1, maximum: 10000 }), env: 'WRITE_BURST', kind: 'int', default: '1000', help: 'Writes allowed at once above WRITE_QPS before the limit applies, as client-go\'s burst.' }
} satisfies Record<string, Option>

type Schemas = { [K in keyof typeof options]: (typeof options)[K]['schema'] }
export const ConfigSchema = Type.Object(Object.fromEntries(Object.entries(options).map(([key, option]) => [key, option.schema])) as Schemas)
export type Config = Static<typeof ConfigSchema>
const optionOf = (key: keyof Config): Option => options[key]

export class ConfigError extends Error {}

const flagOf = (key: string) => '--' + key.replace(/[A-Z]/g, c => '-' + c.toLowerCase())
const nameOf = (key: keyof Config) => `${optionOf(key).env} (${flagOf(key)})`

function convert (key: keyof Config, text: string): unknown {
  const { kind } = optionOf(key)
  const fail = (what: string) => new ConfigError(`${nameOf(key)}: "${text}" is not ${what}`)
  switch (kind) {
    case 'string': return text
    case 'list': return text.split(',').map(s => s.trim()).filter(s => s !== '')
    case 'int': if (!/^-?\d+$/.test(text.trim())) throw fail('a whole number'); return Number(text)
    case 'number': if (text.trim() === '' || Number.isNaN(Number(text))) throw fail('a number'); return Number(text)
    case 'bool':
      if (/^(true|1|yes)$/i.test(text.trim())) return true
      if (/^(false|0|no)$/i.test(text.trim())) return false
      throw fail('true or false')
    case 'duration': {
      const ms = parseDuration(text)
      if (ms === undefined) throw fail('a duration such as 30s, 5m or 1h30m')
      return ms
    }
  }
}

export function helpText (): string {
  const lines = ['Usage: self-healing-controller [options]', '       self-healing-controller lint-rules FILE...', '', 'Options (flag or environment variable; the flag wins):']
  for (const [key, option] of Object.entries(options) as Array<[keyof Config, Option]>) {
    const shown = option.default === undefined ? '' : ` (default ${option.default})`
    lines.push(`  ${flagOf(key).padEnd(28)} ${option.env.padEnd(24)} ${option.help}${shown}`)
  }
  return lines.join('\n')
}

/** Reads options from argv and env, converts and validates them. Throws ConfigError naming the option. */
export function parseConfig (argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Config | 'help' {
  const keys = Object.keys(options) as Array<keyof Config>
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        help: { type: 'boolean', short: 'h' },
        ...Object.fromEntries(keys.map(key => [flagOf(key).slice(2), { type: optionOf(key).kind === 'bool' ? 'boolean' : 'string' }] as const))
      },
      strict: true,
      allowPositionals: false
    }).values as Record<string, string | boolean | undefined>
  } catch (err) {
    throw new ConfigError((err as Error).message)
  }
  if (values.help === true) return 'help'
  const raw: Record<string, unknown> = {}
  for (const key of keys) {
    const flag = values[flagOf(key).slice(2)]
    const text = typeof flag === 'boolean' ? String(flag) : flag ?? env[optionOf(key).env] ?? optionOf(key).default
    if (text !== undefined) raw[key] = convert(key, text)
  }
  raw.provider ??= raw.cluster === 'sim' ? 'sim' : 'none'
  for (const error of Value.Errors(ConfigSchema, raw)) {
    const key = error.instancePath.split('/')[1] as keyof Config | undefined
    throw new ConfigError(key !== undefined && key in options ? `${nameOf(key)}: ${error.message}` : `configuration: ${error.message}`)
  }
  const config = raw as Config
  if (config.evictionBackoffMax < config.evictionBackoff) throw new ConfigError(`${nameOf('evictionBackoffMax')}: must be at least EVICTION_BACKOFF`)
  if (config.leaseRenewDeadline >= config.leaseDuration) throw new ConfigError(`${nameOf('leaseRenewDeadline')}: must be shorter than LEASE_DURATION`)
  if (config.provider === 'sim' && config.cluster !== 'sim') throw new ConfigError(`${nameOf('provider')}: the sim provider only works on the simulated cluster`)
  try {
    parseWindows(config.remediationWindows)
  } catch (err) {
    throw new ConfigError(`${nameOf('remediationWindows')}: ${(err as Error).message}`)
  }
  return config
}

export type Credentials = { webhook?: string, faults?: string, admin?: string }
/** The configuration once credentials are resolved: the listen address is settled. */
export type ServiceConfig = Config & { host: string }

function readSecret (key: 'webhookToken' | 'faultsToken' | 'adminToken', fileKey: 'webhookTokenFile' | 'faultsTokenFile' | 'adminTokenFile', config: Config): string | undefined {
  if (config[key] !== undefined && config[fileKey] !== undefined) throw new ConfigError(`${nameOf(key)} and ${nameOf(fileKey)}: set one, not both`)
  const file = config[fileKey]
  if (file === undefined) return config[key]
  let text: string
  try {
    text = readFileSync(file, 'utf8').trim()
  } catch (err) {
    throw new ConfigError(`${nameOf(fileKey)}: cannot read ${file}: ${(err as Error).message}`)
  }
  if (text === '') throw new ConfigError(`${nameOf(fileKey)}: ${file} is empty`)
  return text
}

/**
 * Tokens, and the one exception to "a token is required": the simulated cluster on loopback.
 * Returns the credentials and the warnings to log.
 */
export function resolveCredentials (config: Config): { config: ServiceConfig, credentials: Credentials, warnings: string[] } {
  const credentials: Credentials = {}
  const webhook = readSecret('webhookToken', 'webhookTokenFile', config)
  const faults = readSecret('faultsToken', 'faultsTokenFile', config)
  const admin = readSecret('adminToken', 'adminTokenFile', config)
  if (webhook !== undefined) credentials.webhook = webhook
  if (faults !== undefined) credentials.faults = faults
  if (admin !== undefined) credentials.admin = admin
  if (admin !== undefined && (admin === webhook || admin === faults)) throw new ConfigError(`${nameOf('adminToken')}: must differ from the webhook and faults tokens`)
  const warnings: string[] = []
  let resolved: ServiceConfig = { ...config, host: config.host ?? '0.0.0.0' }
  if (webhook === undefined) {
    const loopback = ['127.0.0.1', '::1', 'localhost'].includes(config.host ?? '')
    if (config.cluster === 'sim' && (config.host === undefined || loopback)) {
      resolved = { ...config, host: config.host ?? '127.0.0.1' }
      warnings.push('no WEBHOOK_TOKEN: running unauthenticated, on 127.0.0.1 only (allowed on the simulated cluster)')
    } else if (config.insecureNoAuth) {
      warnings.push('INSECURE_NO_AUTH is set: every endpoint is open to anyone who can reach this port')
    } else {
      throw new ConfigError(`${nameOf('webhookToken')} or ${nameOf('webhookTokenFile')}: a token is required (or INSECURE_NO_AUTH=true in a lab)`)
    }
  }
  if (config.faultsEnabled && faults === undefined && webhook !== undefined) {
    throw new ConfigError(`${nameOf('faultsToken')} or ${nameOf('faultsTokenFile')}: FAULTS_ENABLED needs its own token`)
  }
  return { config: resolved, credentials, warnings }
}

export function policyOf (config: Config): PolicyConfig {
  const optInActions: Record<string, RequestedAction> = { drain: 'ladder', reboot: 'reboot', replace: 'replace' }
  return {
    nodeLabels: config.nodeLabels,
    optInLabel: config.optInLabel,
    optInActions,
    clockSkewMs: config.clockSkew,
    minFiringAgeMs: config.minFiringAge,
    flapWindowMs: config.flapWindow,
    flapMaxRefires: config.flapMaxRefires,
    cooldownMs: config.cooldown,
    poolSpacingMs: config.poolSpacing,
    poolLabel: config.poolLabel,
    zoneLabel: config.zoneLabel,
    breakerThreshold: config.breakerThreshold,
    breakerMinNodes: config.breakerMinNodes,
    breakerSettleMs: config.breakerSettle,
    stormSettleMs: config.stormSettle,
    maxConcurrentDrains: config.maxConcurrentDrains,
    poolMaxUnavailable: parseBudget(config.poolMaxUnavailable)!,
    disruptorTaints: [...knownDisruptorTaints, ...config.disruptionTaints.map(parseDisruptorTaint)],
    ladder: config.remediationLadder,
    ladderWindowMs: config.ladderWindow,
    drainTimeoutMs: config.drainTimeout,
    rebootTimeoutMs: config.rebootTimeout,
    replaceTimeoutMs: config.replaceTimeout,
    verifyDwellMs: config.verifyDwell,
    alertTtlMs: config.alertTtl
  }
}

/** The engine's settings: the policy and how the shell paces its work. */
export function engineConfigOf (config: Config): EngineConfig {
  return {
    policy: policyOf(config),
    annotationPrefix: config.annotationPrefix,
    lease: { namespace: config.leaseNamespace, name: config.leaseName },
    reconcileIntervalMs: config.reconcileInterval,
    resyncIntervalMs: config.resyncInterval,
    writeConcurrency: config.writeConcurrency,
    providerTimeoutMs: config.providerTimeout,
    alertmanagerSyncMs: config.alertmanagerSync,
    windows: parseWindows(config.remediationWindows),
    capacityCheck: config.capacityCheck,
    drain: {
      concurrency: config.evictionConcurrency,
      backoff: { initialMs: config.evictionBackoff, maxMs: config.evictionBackoffMax },
      forceDeleteOnTimeout: config.forceDeleteOnTimeout,
      switches: {
        evictUnmanaged: config.evictUnmanagedPods,
        deleteEmptyDirData: config.deleteEmptydirData,
        allowLocalDataLoss: config.allowLocalDataLoss,
        excludeAnnotation: `${config.annotationPrefix}/drain-exclude`
      }
    }
  }
}

/** The settings worth one log line at start, durations in their written form. */
export function describeConfig (config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, option] of Object.entries(options) as Array<[keyof Config, Option]>) {
    if (key === 'webhookToken' || key === 'faultsToken' || key === 'adminToken') continue
    const value = config[key]
    out[key] = option.kind === 'duration' && typeof value === 'number' ? formatDuration(value) : value
  }
  return out
}
