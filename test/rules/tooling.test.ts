// Runs the real Prometheus/Alertmanager tools on the project files:
// promtool check rules, promtool test rules, amtool check-config and
// amtool config routes test. Each is also run on a deliberately broken copy,
// so these tests can fail.
//
// Needs promtool and amtool on PATH (Debian: prometheus, prometheus-alertmanager).
// Without them the tests fail; set SHC_SKIP_PROM_TOOLS=1 to skip them instead.

import t from 'tap'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const rulesDir = join(root, 'alert-rules')
const ruleFiles = ['node-remediation.rules.yml', 'node-paging.rules.yml', 'self-healing-controller.rules.yml'].map(f => join(rulesDir, f))
const testFiles = readdirSync(join(rulesDir, 'tests')).filter(f => f.endsWith('.test.yml')).sort().map(f => join(rulesDir, 'tests', f))
const amConfig = join(root, 'deploy', 'alertmanager', 'alertmanager.yml')

type Result = { status: number | null, output: string }

function run (cmd: string, args: string[], cwd = root): Result {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 120_000 })
  if (r.error !== undefined) throw r.error
  return { status: r.status, output: `${r.stdout}${r.stderr}` }
}

const available = (cmd: string): boolean => spawnSync(cmd, ['--version'], { encoding: 'utf8' }).error === undefined
const skip = process.env.SHC_SKIP_PROM_TOOLS === '1'
  ? 'SHC_SKIP_PROM_TOOLS=1'
  : false

/** A scratch copy of alert-rules/ (rules + tests) to break on purpose. */
function scratchRules (): string {
  const dir = mkdtempSync(join(tmpdir(), 'shc-rules-'))
  cpSync(rulesDir, join(dir, 'alert-rules'), { recursive: true })
  return join(dir, 'alert-rules')
}

t.test('promtool and amtool are installed', { skip }, async t => {
  t.ok(available('promtool'), 'promtool on PATH (Debian package: prometheus)')
  t.ok(available('amtool'), 'amtool on PATH (Debian package: prometheus-alertmanager)')
})

t.test('promtool check rules', { skip }, async t => {
  const r = run('promtool', ['check', 'rules', ...ruleFiles])
  t.equal(r.status, 0, r.output)
  t.match(r.output, /SUCCESS: 9 rules found/)
  t.match(r.output, /SUCCESS: 4 rules found/)
  t.match(r.output, /SUCCESS: 10 rules found/)

  const dir = scratchRules()
  t.teardown(() => rmSync(dirname(dir), { recursive: true, force: true }))
  const broken = join(dir, 'node-remediation.rules.yml')
  writeFileSync(broken, readFileSync(broken, 'utf8').replace(/^(\s+)for: 5m$/m, '$1for: 5 minutes'))
  const b = run('promtool', ['check', 'rules', broken])
  t.equal(b.status, 1, 'a broken copy fails')
  t.match(b.output, /not a valid duration string/)
})

t.test('promtool test rules', { skip }, async t => {
  t.same(testFiles.map(f => f.slice(rulesDir.length + 1)),
    ['tests/db-latency.test.yml', 'tests/disk-iops.test.yml', 'tests/nic-errors.test.yml', 'tests/paging.test.yml', 'tests/self-health.test.yml'])
  const r = run('promtool', ['test', 'rules', ...testFiles])
  t.equal(r.status, 0, r.output)
  t.equal(r.output.match(/SUCCESS/g)?.length, testFiles.length, r.output)
})

t.test('promtool test rules fails when the hysteresis is removed', { skip }, async t => {
  const dir = scratchRules()
  t.teardown(() => rmSync(dirname(dir), { recursive: true, force: true }))
  const rules = join(dir, 'node-remediation.rules.yml')
  const text = readFileSync(rules, 'utf8')
  const broken = text.replace(/\n\s+keep_firing_for: 10m/g, '')
  t.not(broken, text)
  writeFileSync(rules, broken)
  t.equal(run('promtool', ['check', 'rules', rules]).status, 0, 'still a valid rule file')
  const r = run('promtool', ['test', 'rules', join(dir, 'tests', 'disk-iops.test.yml')])
  t.equal(r.status, 1, 'the brief-dip test catches it')
  t.match(r.output, /name: disk brief dip does not resolve/)
})

t.test('promtool test rules fails when the sample-count guard is weakened', { skip }, async t => {
  const dir = scratchRules()
  t.teardown(() => rmSync(dirname(dir), { recursive: true, force: true }))
  const rules = join(dir, 'node-remediation.rules.yml')
  writeFileSync(rules, readFileSync(rules, 'utf8').replaceAll('>= 8', '>= 1'))
  const r = run('promtool', ['test', 'rules', join(dir, 'tests', 'nic-errors.test.yml')])
  t.equal(r.status, 1)
  t.match(r.output, /name: nic sparse or new data does not fire/)
})

t.test('promtool test rules fails when a self-health alert would reach the controller', { skip }, async t => {
  // Paging only: exp_labels are exact, so an opt-in label on any self-health alert fails its test.
  const dir = scratchRules()
  t.teardown(() => rmSync(dirname(dir), { recursive: true, force: true }))
  const rules = join(dir, 'self-healing-controller.rules.yml')
  const text = readFileSync(rules, 'utf8')
  const broken = text.replace(/(\n\s+)severity: page/, '$1severity: page$1remediation: drain')
  t.not(broken, text)
  writeFileSync(rules, broken)
  const r = run('promtool', ['test', 'rules', join(dir, 'tests', 'self-health.test.yml')])
  t.equal(r.status, 1)
  t.match(r.output, /remediation="drain"/)
})

t.test('promtool test rules fails when the leader alert stops waiting 2m', { skip }, async t => {
  const dir = scratchRules()
  t.teardown(() => rmSync(dirname(dir), { recursive: true, force: true }))
  const rules = join(dir, 'self-healing-controller.rules.yml')
  const text = readFileSync(rules, 'utf8')
  const broken = text.replace(/(absent\(shc_leader\)\n\s+)for: 2m/, '$1for: 0m')
  t.not(broken, text)
  writeFileSync(rules, broken)
  const r = run('promtool', ['test', 'rules', join(dir, 'tests', 'self-health.test.yml')])
  t.equal(r.status, 1)
  t.match(r.output, /name: no replica leading for 2m pages; a quick hand-over does not/)
})

t.test('amtool check-config', { skip }, async t => {
  const r = run('amtool', ['check-config', amConfig])
  t.equal(r.status, 0, r.output)
  t.match(r.output, /SUCCESS/)

  const dir = mkdtempSync(join(tmpdir(), 'shc-am-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const broken = join(dir, 'alertmanager.yml')
  writeFileSync(broken, readFileSync(amConfig, 'utf8').replace('credentials_file:', 'credential_file:'))
  const b = run('amtool', ['check-config', broken])
  t.equal(b.status, 1, 'a broken copy fails')
  t.match(b.output, /field credential_file not found/)
})

t.test('amtool: only opted-in alerts reach the controller', { skip }, async t => {
  const route = (...labels: string[]): string =>
    run('amtool', ['config', 'routes', 'test', `--config.file=${amConfig}`, ...labels]).output
      .split('\n').filter(l => l !== '' && !l.startsWith('Warning:')).join(',')
  t.equal(route('alertname=NodeDiskIOPSSaturated', 'node=worker-3', 'remediation=drain'), 'self-healing-controller')
  t.equal(route('alertname=X', 'node=worker-3', 'remediation=reboot'), 'self-healing-controller')
  t.equal(route('alertname=X', 'node=worker-3', 'remediation=replace'), 'self-healing-controller')
  t.equal(route('alertname=X', 'node=worker-3', 'remediation=cordon'), 'default')
  t.equal(route('alertname=NodeExporterDown', 'severity=warning'), 'default')
  t.equal(route('alertname=NodeRemediationOnManyNodes', 'severity=page'), 'default')
})

t.test('the bad linter fixtures are valid for promtool (the linter adds value)', { skip }, async t => {
  const fixtures = join(root, 'test', 'rules', 'fixtures')
  const files = readdirSync(fixtures).filter(f => f.startsWith('bad-') || f === 'good.rules.yml').map(f => join(fixtures, f))
  const r = run('promtool', ['check', 'rules', ...files])
  t.equal(r.status, 0, r.output)
})
