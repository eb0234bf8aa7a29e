// The Helm chart's generated files (scripts/helm/generate.ts) are what their sources say: these
// tests fail when src/config.ts, alert-rules/, deploy/alertmanager or deploy/ RBAC changed and
// the generator was not run, and they pin how the option table becomes values.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse, parseAllDocuments } from 'yaml'
import { options } from '../../src/config.ts'
import { parseDuration } from '../../src/duration.ts'
import {
  CHART_DIR, CHART_OWNED, classifyOptions, DURATION_PATTERN, generateChartFiles, RBAC_FILE, RBAC_SOURCES,
  RULE_FILES, SCHEMA_FILE, valueSchema, VALUES_FILE, type TableOption
} from '../../scripts/helm/chart.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const script = join(root, 'scripts', 'helm', 'generate.ts')
const read = (rel: string): string => readFileSync(join(root, rel), 'utf8')
type Table = Record<string, TableOption>

t.test('committed chart files match a fresh generation', async t => {
  const generated = await generateChartFiles(root)
  t.ok(generated.length >= 8, `values, schema, options template, RBAC, Alertmanager and rule files (${generated.length})`)
  for (const { path, content } of generated) {
    t.equal(read(path), content, `${path} is up to date (run node scripts/helm/generate.ts)`)
  }
})

t.test('every option of src/config.ts is a value, a token Secret or set by the chart', async t => {
  const { config, tokens } = classifyOptions()
  const schema = JSON.parse(read(SCHEMA_FILE)) as { properties: Record<string, { properties?: Record<string, unknown> }> }
  const values = parse(read(VALUES_FILE)) as Record<string, Record<string, unknown>>
  const accounted = [
    ...config.map(o => o.key),
    ...tokens.flatMap(tk => [`${tk.name}Token`, `${tk.name}TokenFile`]),
    ...Object.keys(CHART_OWNED)
  ]
  t.same([...accounted].sort(), Object.keys(options).sort(), 'each option exactly once')
  t.same(Object.keys(schema.properties.config?.properties ?? {}), config.map(o => o.key), 'schema: one property per config option, in table order')
  t.same(Object.keys(values.config ?? {}), config.map(o => o.key), 'values.yaml: one key per config option')
  t.ok(Object.values(values.config ?? {}).every(v => v === null), 'every config value defaults to null: the service default')
  for (const token of tokens) {
    t.same(values[token.name], { existingSecret: '', key: 'token' }, `${token.name}: a Secret reference, no token value`)
    t.ok(schema.properties[token.name], `${token.name} in the schema`)
  }
  t.same(tokens.map(tk => tk.name).sort(), ['admin', 'faults', 'webhook'])
  // Tokens are never plain values.
  for (const key of ['webhookToken', 'faultsToken', 'adminToken', 'webhookTokenFile', 'faultsTokenFile', 'adminTokenFile']) {
    t.notOk(config.some(o => o.key === key), `${key} is not a config value`)
  }
})

t.test('a new option, or a new token pair, flows through without touching the generator', async t => {
  const table = options as unknown as Table
  const extended: Table = {
    ...table,
    adminToken: { schema: {}, env: 'ADMIN_TOKEN', kind: 'string', help: 'Bearer token for the admin API.' },
    adminTokenFile: { schema: {}, env: 'ADMIN_TOKEN_FILE', kind: 'string', help: 'File holding the admin bearer token.' },
    drainGrace: { schema: { type: 'integer', minimum: 0 }, env: 'DRAIN_GRACE', kind: 'duration', default: '30s', help: 'Grace.' }
  }
  const { config, tokens } = classifyOptions(extended)
  t.same(tokens.find(tk => tk.name === 'admin'), { name: 'admin', fileEnv: 'ADMIN_TOKEN_FILE', help: 'File holding the admin bearer token.' })
  t.notOk(config.some(o => o.key.startsWith('admin')), 'neither half of a token pair is a value')
  t.same(config.at(-1), { key: 'drainGrace', env: 'DRAIN_GRACE', kind: 'duration', default: '30s', help: 'Grace.' })
  // A chart-owned key that disappeared from the table is an error, not silently ignored.
  const { cluster: _, ...withoutCluster } = table
  t.throws(() => classifyOptions(withoutCluster), /CHART_OWNED names "cluster"/)
})

t.test('value schemas follow the option table', async t => {
  const table = options as unknown as Table
  const of = (key: string) => valueSchema(key, table[key]!)
  t.match(of('port'), { type: ['integer', 'null'], minimum: 0, maximum: 65535 })
  t.match(of('breakerThreshold'), { type: ['number', 'null'], exclusiveMinimum: 0, maximum: 1 })
  t.match(of('dryRun'), { type: ['boolean', 'null'] })
  t.match(of('nodeLabels'), { type: ['array', 'null'], items: { type: 'string' }, minItems: 1 })
  t.match(of('cooldown'), { type: ['string', 'null'], pattern: DURATION_PATTERN })
  t.same(of('logLevel').enum, ['fatal', 'error', 'warn', 'info', 'debug', 'trace', null])
  t.same(of('provider').enum, ['sim', 'none', 'aws', 'clusterapi', 'karpenter', null])
  t.match(of('annotationPrefix'), { type: ['string', 'null'], pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$' })
  t.match(of('cooldown').description, /COOLDOWN/)
  t.throws(() => valueSchema('odd', { schema: { type: 'string' }, env: 'ODD', kind: 'int', help: '' }), /kind int but its schema/)
})

t.test('the duration pattern accepts exactly what src/duration.ts parses', async t => {
  const pattern = new RegExp(DURATION_PATTERN)
  const samples = ['0', '1s', '250ms', '5m', '1h30m', '2d', '1h1m1s1ms', '90s', '', '0s', '5', '5 m', '1.5h', 'm', '1x', '-1s', '1h 30m', '1H', '00']
  for (const text of samples) {
    t.equal(pattern.test(text), parseDuration(text) !== undefined, JSON.stringify(text))
  }
})

t.test('the chart carries deploy/ RBAC and alert-rules/ verbatim', async t => {
  const rbac = parse(read(RBAC_FILE)) as Record<string, unknown>
  for (const [name, { file, kind }] of Object.entries(RBAC_SOURCES)) {
    const source = parseAllDocuments(read(file)).map(d => d.toJS()).find(o => o?.kind === kind) as { rules: unknown }
    t.same(rbac[name], source.rules, `${name} = ${file}`)
  }
  const prometheusRule = parse(read('deploy/prometheus-operator/prometheusrule.yaml')) as { spec: { groups: unknown[] } }
  const chartGroups = Object.keys(RULE_FILES).flatMap(name => parse(read(`${CHART_DIR}/files/rules/${name}.yaml`)) as unknown[])
  t.same(chartGroups, prometheusRule.spec.groups, 'the same groups as the generated PrometheusRule')
})

t.test('the script: --check passes on this checkout and fails on a drifted copy', async t => {
  const ok = spawnSync(process.execPath, [script, '--check'], { encoding: 'utf8' })
  t.equal(ok.status, 0, ok.stderr)

  const dir = mkdtempSync(join(tmpdir(), 'shc-helm-drift-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const sources = [CHART_DIR, 'alert-rules', 'deploy/alertmanager', ...Object.values(RBAC_SOURCES).map(s => s.file)]
  for (const rel of sources) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true })
    cpSync(join(root, rel), join(dir, rel), { recursive: true })
  }
  // A hand edit inside the generated block, and a rule changed without regenerating.
  const values = join(dir, VALUES_FILE)
  writeFileSync(values, readFileSync(values, 'utf8').replace('  cooldown: null', '  cooldown: 45m'))
  const rules = join(dir, 'alert-rules/self-healing-controller.rules.yml')
  writeFileSync(rules, readFileSync(rules, 'utf8').replace('for: 2m', 'for: 3m'))
  const drift = spawnSync(process.execPath, [script, '--check', '--root', dir], { encoding: 'utf8' })
  t.equal(drift.status, 1, drift.stdout)
  t.match(drift.stderr, `${VALUES_FILE}: out of date`)
  t.match(drift.stderr, `${CHART_DIR}/files/rules/selfHealth.yaml: out of date`)

  // Regenerating fixes both, and keeps the hand-written part of values.yaml.
  const write = spawnSync(process.execPath, [script, '--root', dir], { encoding: 'utf8' })
  t.equal(write.status, 0, write.stderr)
  t.equal(spawnSync(process.execPath, [script, '--check', '--root', dir], { encoding: 'utf8' }).status, 0)
  t.equal(readFileSync(values, 'utf8'), read(VALUES_FILE))
  t.match(readFileSync(join(dir, CHART_DIR, 'files/rules/selfHealth.yaml'), 'utf8'), 'for: 3m')
})
