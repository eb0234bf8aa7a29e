import t from 'tap'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { lintRules, RuleFileError, type Finding } from '../../src/rules/lint.ts'
import { parseDuration, tokenize, aggregations, vectorMatchings, rangeWindows } from '../../src/rules/promql-scan.ts'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
const fixture = (name: string): string => join(here, 'fixtures', name)
const lintFile = (path: string, options = {}): Finding[] => lintRules(readFileSync(path, 'utf8'), path, options)

t.test('a good rule file has no findings', async t => {
  t.same(lintFile(fixture('good.rules.yml')), [])
})

// One bad fixture per finding kind; each must produce exactly this finding.
const bad: Array<[string, string]> = [
  ['bad-remediation-value.rules.yml',
    'alert "BadRule": label remediation="cordon" is not one of drain, reboot, replace'],
  ['bad-node-by.rules.yml',
    'alert "BadRule": "max by (instance)" drops the node label; add node to by (...)'],
  ['bad-node-without.rules.yml',
    'alert "BadRule": "max without (node, device)" removes the node label'],
  ['bad-node-no-grouping.rules.yml',
    'alert "BadRule": "max" has no by (...) clause and drops the node label; use max by (node, ...)'],
  ['bad-node-no-aggregation.rules.yml',
    'alert "BadRule": no aggregation by (node) in the expression, so the node label is not guaranteed (it depends on the raw series); aggregate with e.g. max by (node) (...)'],
  ['bad-node-on.rules.yml',
    'alert "BadRule": "/ on (instance)" keeps only the listed labels and drops node; add node to on (...)'],
  ['bad-node-ignoring.rules.yml',
    'alert "BadRule": "/ ignoring (node)" drops the node label'],
  ['bad-recording-rule.rules.yml',
    'alert "BadRule": "max by (instance)" drops the node label (in recording rule "cluster:disk_busy:max_rate5m"); add node to by (...)'],
  ['bad-static-node-label.rules.yml',
    'alert "BadRule": sets label node="worker-1" in the rule; the node label must come from the expression (aggregate by (node))'],
  ['bad-short-window.rules.yml',
    'alert "BadRule": range window [1m] is shorter than the minimum 5m'],
  ['bad-for-shorter-than-window.rules.yml',
    'alert "BadRule": "for: 2m" is shorter than its range window [5m]; set for >= the window'],
  ['bad-no-guard.rules.yml',
    'alert "BadRule": no sample-count guard: add "and count_over_time(<series>[5m]) >= N" so scrape gaps or a just-appeared target cannot fire it'],
  ['bad-absent.rules.yml',
    'alert "BadRule": uses absent(); alerts on missing data are for paging, never for remediation'],
  ['bad-absent-over-time.rules.yml',
    'alert "BadRule": uses absent_over_time(); alerts on missing data are for paging, never for remediation'],
  ['bad-missing-value-annotation.rules.yml',
    'alert "BadRule": missing annotation "value"']
]

for (const [name, message] of bad) {
  t.test(`finding: ${name}`, async t => {
    const file = fixture(name)
    t.same(lintFile(file), [{ file, group: 'bad', rule: 'BadRule', message }])
  })
}

t.test('the minimum window is configurable', async t => {
  const file = fixture('good.rules.yml')
  t.same(lintFile(file, { minWindow: '10m' }), [{
    file,
    group: 'example.alerts',
    rule: 'ExampleDiskBusy',
    message: 'alert "ExampleDiskBusy": range window [5m] is shorter than the minimum 10m (in recording rule "node:example_busy:max_rate5m")'
  }])
  t.throws(() => lintFile(file, { minWindow: 'five minutes' }), /invalid minimum window/)
})

t.test('the project rules pass the linter', async t => {
  for (const rel of ['alert-rules/node-remediation.rules.yml', 'alert-rules/node-paging.rules.yml', 'alert-rules/self-healing-controller.rules.yml']) {
    t.same(lintFile(join(root, rel)), [], rel)
  }
  // Not vacuous: the remediation file has three remediation alerts, the
  // paging and self-health files none.
  const remediationAlerts = (rel: string): string[] => {
    const doc = parse(readFileSync(join(root, rel), 'utf8')) as { groups: Array<{ rules: Array<{ alert?: string, labels?: Record<string, string> }> }> }
    return doc.groups.flatMap(g => g.rules).filter(r => r.alert !== undefined && r.labels?.remediation !== undefined).map(r => r.alert as string)
  }
  t.same(remediationAlerts('alert-rules/node-remediation.rules.yml'),
    ['NodeDatabaseConnectionLatencyHigh', 'NodeDiskIOPSSaturated', 'NodeNetworkInterfaceErrors'])
  t.same(remediationAlerts('alert-rules/node-paging.rules.yml'), [])
  t.same(remediationAlerts('alert-rules/self-healing-controller.rules.yml'), [])
})

t.test('the generated PrometheusRule passes the linter', async t => {
  t.same(lintFile(join(root, 'deploy/prometheus-operator/prometheusrule.yaml')), [])
})

t.test('a project rule with a broken guard is caught', async t => {
  // The linter on the real file, with the guard removed from one recording rule.
  const text = readFileSync(join(root, 'alert-rules/node-remediation.rules.yml'), 'utf8')
  const broken = text.replace(/\n\s+and\n\s+count_over_time\(node_disk_io_time_seconds_total\{[^}]*\}\[5m\]\) >= 8/, '')
  t.not(broken, text)
  t.same(lintRules(broken, 'x.yml').map(f => f.message), [
    'alert "NodeDiskIOPSSaturated": no sample-count guard: add "and count_over_time(<series>[5m]) >= N" so scrape gaps or a just-appeared target cannot fire it'
  ])
})

t.test('several findings in one rule are all reported', async t => {
  const text = `
groups:
  - name: g
    rules:
      - alert: Worst
        expr: sum(rate(x[1m])) > 1 or absent(x)
        labels: { remediation: nuke }
`
  t.same(lintRules(text, 'inline.yml').map(f => f.message), [
    'alert "Worst": label remediation="nuke" is not one of drain, reboot, replace',
    'alert "Worst": missing annotation "summary"',
    'alert "Worst": missing annotation "value"',
    'alert "Worst": "sum" has no by (...) clause and drops the node label; use sum by (node, ...)',
    'alert "Worst": range window [1m] is shorter than the minimum 5m',
    'alert "Worst": "for: 0s" is shorter than its range window [1m]; set for >= the window',
    'alert "Worst": no sample-count guard: add "and count_over_time(<series>[5m]) >= N" so scrape gaps or a just-appeared target cannot fire it',
    'alert "Worst": uses absent(); alerts on missing data are for paging, never for remediation'
  ])
})

t.test('the opt-in label name is configurable', async t => {
  const file = fixture('bad-remediation-value.rules.yml')
  t.same(lintFile(file, { optInLabel: 'self-healing' }), [], 'no rule carries self-healing')
  const renamed = readFileSync(file, 'utf8').replace('remediation: cordon', 'self-healing: cordon')
  t.same(lintRules(renamed, 'r.yml', { optInLabel: 'self-healing' }).map(f => f.message),
    ['alert "BadRule": label self-healing="cordon" is not one of drain, reboot, replace'])
})

t.test('rules without the remediation label are not checked', async t => {
  const text = `
groups:
  - name: paging
    rules:
      - alert: Absent
        expr: absent(up{job="x"})
        labels: { severity: page }
`
  t.same(lintRules(text, 'paging.yml'), [])
})

t.test('PrometheusRule manifests and multi-document files are read', async t => {
  const text = `
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: { name: x }
spec:
  groups:
    - name: g
      rules:
        - alert: A
          expr: max by (instance) (rate(x[5m]) and count_over_time(x[5m]) >= 8) > 1
          for: 5m
          labels: { remediation: drain }
          annotations: { summary: s, value: v }
---
groups:
  - name: h
    rules:
      - alert: B
        expr: max by (node) (rate(x[5m]) and count_over_time(x[5m]) >= 8) > 1
        for: 5m
        labels: { remediation: replace }
        annotations: { summary: s, value: v }
`
  t.same(lintRules(text, 'multi.yaml'), [{
    file: 'multi.yaml', group: 'g', rule: 'A', message: 'alert "A": "max by (instance)" drops the node label; add node to by (...)'
  }])
})

t.test('invalid YAML and non-rule files throw RuleFileError', async t => {
  const invalid = fixture('invalid-yaml.rules.yml')
  t.throws(() => lintFile(invalid), RuleFileError)
  t.throws(() => lintFile(invalid), /invalid YAML/)
  t.throws(() => lintFile(fixture('not-a-rule-file.yml')), /no "groups" key/)
  t.throws(() => lintRules('groups:\n  - name: g\n    rules:\n      - alert: A\n', 'f.yml'), /has no "expr"/)
  t.throws(() => lintRules('', 'empty.yml'), /no rule groups found/)
})

t.test('PromQL scan: strings, matchers and comments do not confuse it', async t => {
  const tokens = tokenize(`
    # sum(x[1m]) in a comment
    max by (node) (rate(http_requests_total{path="/sum by (x)[1m]", le='on(y)'}[5m]))
      / on (node) group_left (team) max by (node, team) (info{a=~"b|c"})
  `)
  t.same(aggregations(tokens).map(a => a.display), ['max by (node)', 'max by (node, team)'])
  t.same(rangeWindows(tokens), ['5m'])
  t.same(vectorMatchings(tokens).map(m => [m.display, m.grouped]), [['/ on (node)', true]])
  // Trailing grouping clause, upper-case keywords, set operators, subqueries.
  const t2 = tokenize('SUM(rate(x[5m])) BY (node) and on (instance) y or max_over_time(z[10m:1m])')
  t.same(aggregations(t2).map(a => a.display), ['sum by (node)'])
  t.same(vectorMatchings(t2).map(m => [m.operator, m.setOperator]), [['and', true]])
  t.same(rangeWindows(t2), ['5m', '10m:1m'])
  // topk keeps the labels of the series it selects.
  t.same(aggregations(tokenize('topk(3, x)')), [])
})

t.test('parseDuration', async t => {
  t.equal(parseDuration('5m'), 300_000)
  t.equal(parseDuration('1h30m'), 5_400_000)
  t.equal(parseDuration('90s'), 90_000)
  t.equal(parseDuration('500ms'), 500)
  t.equal(parseDuration('1d'), 86_400_000)
  t.equal(parseDuration('0s'), 0)
  t.equal(parseDuration('5 minutes'), null)
  t.equal(parseDuration(''), null)
  t.equal(parseDuration('m5'), null)
})
