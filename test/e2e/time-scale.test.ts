// The rule time-scaling used by the e2e test and the lab (scripts/rules/time-scale.ts).
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { parse as parseYaml } from 'yaml'
import {
  formatPromDuration, parsePromDuration, scaleDuration, scaleExpr, scaleGuard, timeScaleRules, type TimeScale
} from '../../scripts/rules/time-scale.ts'
import { binaries, ruleFiles } from '../support/prometheus.ts'

const scale: TimeScale = { factor: 30, scrapeInterval: '1s' }

t.test('Prometheus durations', async t => {
  t.equal(parsePromDuration('1h30m'), 5_400_000)
  t.equal(parsePromDuration('500ms'), 500)
  t.equal(parsePromDuration('1d'), 86_400_000)
  t.equal(formatPromDuration(90_000), '1m30s')
  t.equal(formatPromDuration(8571), '8s571ms')
  for (const bad of ['5 minutes', '', 'm5', '5m1h', '1.5m']) t.throws(() => parsePromDuration(bad), `${JSON.stringify(bad)} is rejected`)
  t.equal(scaleDuration('5m', 30), '10s')
  t.equal(scaleDuration('10m', 30), '20s')
  t.equal(scaleDuration('1h', 30), '2m')
  t.equal(scaleDuration('1m', 7), '8s571ms', 'rounded to whole milliseconds')
  t.equal(scaleDuration('0', 30), '0s')
  t.throws(() => scaleDuration('5m', 0))
})

t.test('the guard keeps the same share of a window\'s samples', async t => {
  t.equal(scaleGuard(8, scale), 8, '30s scrape ÷30 = 1s scrape: same N')
  t.equal(scaleGuard(8, { factor: 30, scrapeInterval: '2s' }), 4)
  t.equal(scaleGuard(8, { factor: 60, scrapeInterval: '1s' }), 4)
  t.equal(scaleGuard(4, { factor: 30, scrapeInterval: '1s', contractScrapeInterval: '60s' }), 8)
  t.equal(scaleGuard(8, { factor: 30, scrapeInterval: '3s' }), 2, 'rounded down: tolerates at least as many missed scrapes')
})

t.test('expressions: windows, subqueries, offsets and guards; strings and comments untouched', async t => {
  const expr = 'rate(x{re=~"[5m]", d=~"(/dev/)?(sd.+)"}[5m]) offset 5m\n' +
    '  and count_over_time(x{re=~"(a)|[5m]"}[ 5m ]) >= 8 # not [5m] nor offset 5m\n' +
    '  and max_over_time(y[30m:1m]) > 2 and z offset -10m'
  const { expr: out, changes } = scaleExpr(expr, scale)
  t.equal(out, 'rate(x{re=~"[5m]", d=~"(/dev/)?(sd.+)"}[10s]) offset 10s\n' +
    '  and count_over_time(x{re=~"(a)|[5m]"}[ 10s ]) >= 8 # not [5m] nor offset 5m\n' +
    '  and max_over_time(y[1m:2s]) > 2 and z offset -20s')
  t.equal(changes.length, 6)
  t.equal(scaleExpr('count_over_time(x[5m]) >= 8', { factor: 30, scrapeInterval: '2s' }).expr, 'count_over_time(x[10s]) >= 4')
  t.equal(scaleExpr("label_replace(x, 'a', '[5m]', 'b', '')", scale).expr, "label_replace(x, 'a', '[5m]', 'b', '')")
  t.throws(() => scaleExpr('count_over_time(x[1m]) >= 8', scale), /more than the 2 samples/, 'a guard that could never be met is an error')
})

t.test('the project\'s rule files: only durations and guards change', async t => {
  for (const file of ruleFiles) {
    const source = fs.readFileSync(file, 'utf8')
    const { text, changes } = timeScaleRules(source, scale, path.basename(file))
    t.ok(changes.length > 0, `${path.basename(file)}: ${changes.length} changes`)
    type Rule = { alert?: string, record?: string, expr: string, for?: string, keep_firing_for?: string, labels?: unknown, annotations?: unknown }
    type File = { groups: Array<{ name: string, rules: Rule[] }> }
    const before = parseYaml(source) as File
    const after = parseYaml(text) as File
    t.same(after.groups.map(g => g.name), before.groups.map(g => g.name))
    for (const [gi, group] of before.groups.entries()) {
      for (const [ri, rule] of group.rules.entries()) {
        const scaled = after.groups[gi]!.rules[ri]!
        const name = rule.alert ?? rule.record
        t.same(Object.keys(scaled).sort(), Object.keys(rule).sort(), `${name}: same fields`)
        t.same(scaled.labels, rule.labels, `${name}: same labels`)
        t.same(scaled.annotations, rule.annotations, `${name}: same annotations`)
        if (rule.for !== undefined) t.equal(scaled.for, scaleDuration(rule.for, 30), `${name}: for ${rule.for} → ${scaled.for}`)
        if (rule.keep_firing_for !== undefined) t.equal(scaled.keep_firing_for, '20s', `${name}: keep_firing_for 10m → 20s`)
        // Undo the scaling by hand: what is left must be the original expression.
        const undone = scaled.expr.replace(/\[10s\]/g, '[5m]').replace(/offset 10s/g, 'offset 5m')
        t.equal(undone, rule.expr, `${name}: the expression differs only in its durations`)
        if (rule.expr.includes('count_over_time')) t.match(scaled.expr, /\[10s\]\) >= 8/, `${name}: guard still >= 8 at a 1s scrape`)
      }
    }
  }
})

const promtool = spawnSync(binaries.promtool, ['--version']).error === undefined
t.test('promtool accepts the scaled files', { skip: promtool ? false : 'promtool not on PATH' }, async t => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shc-time-scale-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const written = ruleFiles.map(file => {
    const target = path.join(dir, path.basename(file))
    fs.writeFileSync(target, timeScaleRules(fs.readFileSync(file, 'utf8'), scale, file).text)
    return target
  })
  const r = spawnSync(binaries.promtool, ['check', 'rules', ...written], { encoding: 'utf8' })
  t.equal(r.status, 0, `${r.stdout}${r.stderr}`)
  t.match(r.stdout, /SUCCESS: 9 rules found/)
  t.match(r.stdout, /SUCCESS: 4 rules found/)
})
