// The prometheus-operator variants are generated from the plain files
// (scripts/rules/generate-operator.ts); these tests fail when they drift.

import t from 'tap'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import {
  ALERTMANAGER_CONFIG_OUTPUT, ALERTMANAGER_SOURCE, generateOperatorManifests, OperatorRenderError,
  parseMatcher, PROMETHEUS_RULE_OUTPUT, renderAlertmanagerConfig, renderPrometheusRule, RULE_SOURCES,
  secretRefFromPath
} from '../../src/rules/operator.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const script = join(root, 'scripts', 'rules', 'generate-operator.ts')
const read = (rel: string): string => readFileSync(join(root, rel), 'utf8')

t.test('committed operator manifests match a fresh generation', async t => {
  const generated = await generateOperatorManifests(root)
  t.same(generated.map(g => g.path), [PROMETHEUS_RULE_OUTPUT, ALERTMANAGER_CONFIG_OUTPUT])
  for (const { path, content } of generated) {
    t.equal(read(path), content, `${path} is up to date (run node scripts/rules/generate-operator.ts)`)
  }
})

t.test('a change in the plain files changes the generated output', async t => {
  const sources = RULE_SOURCES.map(path => ({ path, text: read(path) }))
  const edited = sources.map(s => ({ ...s, text: s.text.replace('> 0.9\n', '> 0.95\n') }))
  t.not(renderPrometheusRule(edited), read(PROMETHEUS_RULE_OUTPUT))
  const am = { path: ALERTMANAGER_SOURCE, text: read(ALERTMANAGER_SOURCE).replace('repeat_interval: 1h', 'repeat_interval: 4h') }
  t.not(renderAlertmanagerConfig(am), read(ALERTMANAGER_CONFIG_OUTPUT))
})

t.test('the PrometheusRule carries exactly the plain rule groups', async t => {
  const manifest = parse(read(PROMETHEUS_RULE_OUTPUT)) as { apiVersion: string, kind: string, spec: { groups: unknown[] } }
  t.equal(manifest.apiVersion, 'monitoring.coreos.com/v1')
  t.equal(manifest.kind, 'PrometheusRule')
  const plain = RULE_SOURCES.flatMap(p => (parse(read(p)) as { groups: unknown[] }).groups)
  t.same(manifest.spec.groups, plain)
})

t.test('the AlertmanagerConfig mirrors the controller route and receiver', async t => {
  const am = parse(read(ALERTMANAGER_SOURCE)) as {
    route: { routes: Array<Record<string, unknown>> }
    receivers: Array<{ name: string, webhook_configs?: Array<Record<string, unknown>> }>
  }
  const route = am.route.routes.find(r => r.receiver === 'self-healing-controller') as Record<string, unknown>
  const hook = am.receivers.find(r => r.name === 'self-healing-controller')?.webhook_configs?.[0] as Record<string, unknown>
  const cfg = parse(read(ALERTMANAGER_CONFIG_OUTPUT)) as {
    apiVersion: string
    kind: string
    spec: { route: Record<string, unknown>, receivers: Array<{ name: string, webhookConfigs: Array<Record<string, unknown>> }> }
  }
  t.equal(cfg.apiVersion, 'monitoring.coreos.com/v1alpha1')
  t.equal(cfg.kind, 'AlertmanagerConfig')
  t.same(cfg.spec.route, {
    receiver: 'self-healing-controller',
    groupBy: route.group_by,
    groupWait: route.group_wait,
    groupInterval: route.group_interval,
    repeatInterval: route.repeat_interval,
    matchers: [{ name: 'remediation', matchType: '=~', value: 'drain|reboot|replace' }]
  })
  t.same(cfg.spec.receivers, [{
    name: 'self-healing-controller',
    webhookConfigs: [{
      url: hook.url,
      sendResolved: true,
      maxAlerts: 0,
      httpConfig: {
        authorization: { type: 'Bearer', credentials: { name: 'self-healing-controller-webhook', key: 'token' } }
      }
    }]
  }])
})

t.test('the generated rules are valid for promtool', { skip: process.env.SHC_SKIP_PROM_TOOLS === '1' ? 'SHC_SKIP_PROM_TOOLS=1' : false }, async t => {
  const dir = mkdtempSync(join(tmpdir(), 'shc-operator-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const manifest = parse(read(PROMETHEUS_RULE_OUTPUT)) as { spec: { groups: unknown[] } }
  const file = join(dir, 'from-prometheusrule.yml')
  writeFileSync(file, JSON.stringify({ groups: manifest.spec.groups }))
  const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' })
  t.equal(r.status, 0, `${r.stdout}${r.stderr}`)
})

t.test('the script: --check passes on this checkout and fails on a drifted copy', async t => {
  const ok = spawnSync(process.execPath, [script, '--check'], { encoding: 'utf8' })
  t.equal(ok.status, 0, ok.stderr)

  const dir = mkdtempSync(join(tmpdir(), 'shc-drift-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const rel of [...RULE_SOURCES, ALERTMANAGER_SOURCE, PROMETHEUS_RULE_OUTPUT, ALERTMANAGER_CONFIG_OUTPUT]) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true })
    cpSync(join(root, rel), join(dir, rel))
  }
  const rules = join(dir, 'alert-rules/node-remediation.rules.yml')
  writeFileSync(rules, readFileSync(rules, 'utf8').replaceAll('keep_firing_for: 10m', 'keep_firing_for: 20m'))
  const drift = spawnSync(process.execPath, [script, '--check', '--root', dir], { encoding: 'utf8' })
  t.equal(drift.status, 1, drift.stdout)
  t.match(drift.stderr, 'deploy/prometheus-operator/prometheusrule.yaml: out of date')

  // Regenerating fixes it.
  const write = spawnSync(process.execPath, [script, '--root', dir], { encoding: 'utf8' })
  t.equal(write.status, 0, write.stderr)
  t.equal(spawnSync(process.execPath, [script, '--check', '--root', dir], { encoding: 'utf8' }).status, 0)
  t.match(readFileSync(join(dir, PROMETHEUS_RULE_OUTPUT), 'utf8'), 'keep_firing_for: 20m')
})

t.test('untranslatable input is an error, not silently dropped', async t => {
  t.throws(() => renderPrometheusRule([{ path: 'x.yml', text: 'groups:\n  - name: g\n    query_offset: 1m\n    rules: []\n' }]),
    OperatorRenderError)
  t.throws(() => renderPrometheusRule([
    { path: 'a.yml', text: 'groups:\n  - name: g\n    rules: []\n' },
    { path: 'b.yml', text: 'groups:\n  - name: g\n    rules: []\n' }
  ]), /defined twice/)
  const am = read(ALERTMANAGER_SOURCE)
  t.throws(() => renderAlertmanagerConfig({ path: 'am.yml', text: am.replace('max_alerts: 0', 'max_alerts: 0\n        timeout: 10s') }),
    /field "timeout" has no prometheus-operator translation/)
  t.throws(() => renderAlertmanagerConfig({ path: 'am.yml', text: am.replace('credentials_file: /etc/alertmanager/secrets/', 'credentials_file: /var/run/secrets/') }),
    /has no Secret equivalent/)
  t.throws(() => secretRefFromPath('/etc/alertmanager/secrets/only-a-name'), /must be/)
  t.same(parseMatcher('remediation=~"drain|reboot"'), { name: 'remediation', matchType: '=~', value: 'drain|reboot' })
  t.same(parseMatcher('severity!=page'), { name: 'severity', matchType: '!=', value: 'page' })
  t.throws(() => parseMatcher('{remediation="drain"}'), /cannot translate matcher/)
})
