import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError, helpText, options, parseConfig, resolveCredentials, type Config } from '../src/config.ts'

const parse = (env: Record<string, string>, argv: string[] = []) => parseConfig(argv, env) as Config

t.test('defaults are the documented ones', async t => {
  const config = parse({})
  t.match(config, { port: 8080, maxConcurrentDrains: 1, cooldown: 30 * 60_000, dryRun: false, cluster: 'sim', provider: 'sim', logLevel: 'info', breakerThreshold: 0.2 })
  t.same(config.nodeLabels, ['node', 'kubernetes_node'])
  t.equal(parse({ CLUSTER: 'kubernetes' }).provider, 'none', 'no machine action unless a provider is chosen')
})

t.test('environment variables and flags; the flag wins', async t => {
  const config = parse({ PORT: '9000', DRY_RUN: 'true', COOLDOWN: '1h', MAX_CONCURRENT_DRAINS: '3', NODE_LABELS: 'instance_node, node' }, ['--port', '9100', '--log-level=debug'])
  t.match(config, { port: 9100, dryRun: true, cooldown: 3_600_000, maxConcurrentDrains: 3, logLevel: 'debug' })
  t.same(config.nodeLabels, ['instance_node', 'node'])
  t.equal(parse({}, ['--dry-run']).dryRun, true)
})

t.test('a bad value names the option', async t => {
  const cases: Array<[Record<string, string>, string[], RegExp]> = [
    [{ PORT: 'eighty' }, [], /^PORT \(--port\): "eighty" is not a whole number/],
    [{ PORT: '70000' }, [], /^PORT \(--port\): must be <= 65535/],
    [{ COOLDOWN: '30 minutes' }, [], /^COOLDOWN \(--cooldown\): .* is not a duration/],
    [{ MAX_CONCURRENT_DRAINS: '0' }, [], /^MAX_CONCURRENT_DRAINS/],
    [{ DRY_RUN: 'maybe' }, [], /^DRY_RUN \(--dry-run\): "maybe" is not true or false/],
    [{ BREAKER_THRESHOLD: '1.5' }, [], /^BREAKER_THRESHOLD/],
    [{ LOG_LEVEL: 'loud' }, [], /^LOG_LEVEL/],
    [{ CLUSTER: 'prod' }, [], /^CLUSTER/],
    [{ PROMETHEUS_URL: 'prometheus:9090' }, [], /^PROMETHEUS_URL/],
    [{ CLUSTER: 'kubernetes', PROVIDER: 'sim' }, [], /^PROVIDER \(--provider\): the sim provider only works on the simulated cluster/],
    [{ REMEDIATION_WINDOWS: 'Mon-Fri 08:00-18:00 Mars/Olympus' }, [], /^REMEDIATION_WINDOWS \(--remediation-windows\): .*Mars\/Olympus/],
    [{ REMEDIATION_WINDOWS: 'weekdays 9-5' }, [], /^REMEDIATION_WINDOWS \(--remediation-windows\): /],
    [{}, ['--no-such-flag'], /no-such-flag/]
  ]
  for (const [env, argv, message] of cases) t.throws(() => parseConfig(argv, env), { name: 'Error', message }, JSON.stringify(env) + argv.join(' '))
  t.ok(t.throws(() => parseConfig([], { PORT: 'x' })) instanceof ConfigError)
})

t.test('--help lists every option with its variable and default', async t => {
  t.equal(parseConfig(['--help'], {}), 'help')
  const help = helpText()
  for (const option of Object.values(options)) t.match(help, option.env)
  t.match(help, /--cooldown\s+COOLDOWN\s+.*\(default 30m\)/)
  t.match(help, /--max-concurrent-drains/)
})

t.test('tokens: a token is required except on the simulated cluster, which then binds to loopback', async t => {
  const local = resolveCredentials(parse({}))
  t.equal(local.config.host, '127.0.0.1')
  t.same(local.credentials, {})
  t.match(local.warnings[0], /unauthenticated, on 127.0.0.1 only/)
  t.throws(() => resolveCredentials(parse({ HOST: '0.0.0.0' })), { message: /WEBHOOK_TOKEN \(--webhook-token\) or WEBHOOK_TOKEN_FILE .*: a token is required/ })
  t.throws(() => resolveCredentials(parse({ CLUSTER: 'kubernetes' })), { message: /a token is required/ })
  const insecure = resolveCredentials(parse({ CLUSTER: 'kubernetes', INSECURE_NO_AUTH: 'true' }))
  t.equal(insecure.config.host, '0.0.0.0')
  t.match(insecure.warnings[0], /INSECURE_NO_AUTH/)
  t.equal(resolveCredentials(parse({ WEBHOOK_TOKEN: 'x' })).config.host, '0.0.0.0')
})

t.test('token files are read and checked', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'shc-config-'))
  writeFileSync(join(dir, 'token'), 'from-file\n')
  writeFileSync(join(dir, 'empty'), '\n')
  t.equal(resolveCredentials(parse({ WEBHOOK_TOKEN_FILE: join(dir, 'token') })).credentials.webhook, 'from-file')
  t.throws(() => resolveCredentials(parse({ WEBHOOK_TOKEN_FILE: join(dir, 'missing') })), { message: /^WEBHOOK_TOKEN_FILE \(--webhook-token-file\): cannot read/ })
  t.throws(() => resolveCredentials(parse({ WEBHOOK_TOKEN_FILE: join(dir, 'empty') })), { message: /is empty/ })
  t.throws(() => resolveCredentials(parse({ WEBHOOK_TOKEN: 'a', WEBHOOK_TOKEN_FILE: join(dir, 'token') })), { message: /set one, not both/ })
  t.throws(() => resolveCredentials(parse({ WEBHOOK_TOKEN: 'a', FAULTS_ENABLED: 'true' })), { message: /FAULTS_ENABLED needs its own token/ })
  t.equal(resolveCredentials(parse({ WEBHOOK_TOKEN: 'a', ADMIN_TOKEN_FILE: join(dir, 'token') })).credentials.admin, 'from-file')
  t.throws(() => resolveCredentials(parse({ WEBHOOK_TOKEN: 'a', ADMIN_TOKEN: 'a' })), { message: /^ADMIN_TOKEN \(--admin-token\): must differ from the webhook and faults tokens/ })
})
