// deploy/grafana/self-healing-controller.json against the program it is for.
//
// The JSON itself: unique panel ids, every query on the ${datasource} variable, the pool
// variable, only variables that exist, panels inside the 24-column grid and not overlapping.
//
// Then the end-to-end chain (signal exporter → Prometheus 2.42 → Alertmanager 0.25 → the service
// as a child process on the simulated cluster), with Prometheus also scraping the service's
// /metrics, through a scripted remediation: a disk fault on worker-3 fires and is drained, rebooted,
// verified and cooled down; a webhook call with a wrong token is refused; then worker-7 gets a
// fault by hand (POST /v1/faults) and goes the same way. The second remediation comes after
// Prometheus has seen the first, so the counters it moves show a rate, not only a new series.
// Every panel query, with the dashboard's variables filled in, must then succeed on that
// Prometheus, and the panels that describe what the script did must show it. No query may name
// a metric the service does not expose.
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { createSignalExporter } from '../support/signal-exporter.ts'
import {
  e2eSkip, freePort, launch, makeTempDir, removeTempDir, repoRoot, startMonitoring, waitHealthy, waitUntil
} from '../support/prometheus.ts'

const skip = e2eSkip()
const dashboardFile = path.join(repoRoot, 'deploy', 'grafana', 'self-healing-controller.json')
const nodes = Array.from({ length: 10 }, (_, i) => `worker-${i + 1}`)

type Datasource = { type: string, uid: string }
type Target = { refId: string, expr: string, datasource?: Datasource, range?: boolean, instant?: boolean }
type Panel = { id: number, type: string, title: string, gridPos: { x: number, y: number, w: number, h: number }, datasource?: Datasource, targets?: Target[], panels?: Panel[] }
type Variable = { name: string, type: string, query?: unknown, definition?: string, datasource?: Datasource, allValue?: string, includeAll?: boolean, current?: { value?: string | string[] } }
type Dashboard = { uid: string, title: string, schemaVersion: number, panels: Panel[], templating: { list: Variable[] } }

const dashboard = JSON.parse(fs.readFileSync(dashboardFile, 'utf8')) as Dashboard
const panels = dashboard.panels.flatMap(p => [p, ...(p.panels ?? [])])
const queryPanels = panels.filter(p => p.targets !== undefined && p.targets.length > 0)
const variable = (name: string) => dashboard.templating.list.find(v => v.name === name)
const datasourceRef: Datasource = { type: 'prometheus', uid: '${datasource}' }

/** Grafana's built-in interval variables the panels use, filled in by the caller. */
type Builtins = { rateInterval: string, range: string }

/**
 * An expression as Grafana sends it: `$name` and `${name}` (any `:format`) replaced by the value
 * given for that dashboard variable or built-in. A variable the dashboard does not define fails.
 */
function interpolate (expr: string, values: Record<string, string>): string {
  return expr.replace(/\$\{(\w+)(?::[^}]*)?\}|\$(\w+)/g, (whole, braced: string | undefined, bare: string | undefined) => {
    const name = braced ?? bare!
    const value = values[name]
    if (value === undefined) throw new Error(`${whole} in ${JSON.stringify(expr)}: no such dashboard variable`)
    return value
  })
}

function variableValues (pool: string, builtins: Builtins): Record<string, string> {
  const drains = variable('max_concurrent_drains')?.current?.value
  return {
    pool,
    max_concurrent_drains: typeof drains === 'string' ? drains : '',
    __rate_interval: builtins.rateInterval,
    __range: builtins.range,
    __interval: '1s'
  }
}

const promqlKeywords = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'and', 'or', 'unless', 'inf', 'nan'])

/** Metric names an expression selects: identifiers outside strings, matchers, windows and label lists that are no function call or keyword. */
function metricNames (expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
  return [...bare.matchAll(/[a-zA-Z_:][\w:]*/g)]
    .filter(m => !/^\s*\(/.test(bare.slice(m.index + m[0].length)) && !promqlKeywords.has(m[0].toLowerCase()))
    .map(m => m[0])
}

/** Names a /metrics exposition offers to queries: every `# TYPE`, histograms and summaries with their series suffixes. */
function exposedNames (exposition: string): Set<string> {
  const names = new Set<string>()
  for (const [, name, type] of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name!)
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`)
    if (type === 'summary') for (const suffix of ['_sum', '_count']) names.add(`${name}${suffix}`)
  }
  return names
}

t.test('the dashboard JSON', async t => {
  t.ok(dashboard.schemaVersion >= 39, `schemaVersion ${dashboard.schemaVersion}: a Grafana 11/12 dashboard`)
  t.equal(dashboard.uid, 'self-healing-controller', 'a fixed uid, so that a re-import replaces it')

  const ids = panels.map(p => p.id)
  t.same(ids.filter((id, i) => ids.indexOf(id) !== i), [], 'every panel id is unique')
  t.ok(ids.every(id => Number.isInteger(id) && id > 0), 'ids are positive integers')

  const ds = variable('datasource')
  t.match(ds, { type: 'datasource', query: 'prometheus' }, 'the data source is a variable of Prometheus data sources')
  const pool = variable('pool')
  t.match(pool, { type: 'query', datasource: datasourceRef, definition: 'label_values(shc_budget_size, pool)', includeAll: true, allValue: '.*' },
    'the pool variable lists the pools the controller measures')

  for (const panel of queryPanels) {
    t.same(panel.datasource, datasourceRef, `${panel.title}: the panel's data source is \${datasource}`)
    for (const target of panel.targets!) {
      t.same(target.datasource, datasourceRef, `${panel.title} ${target.refId}: the query's data source is \${datasource}`)
      t.ok(target.expr.trim().length > 0, `${panel.title} ${target.refId}: has an expression`)
    }
    const refIds = panel.targets!.map(q => q.refId)
    t.equal(new Set(refIds).size, refIds.length, `${panel.title}: refIds are unique`)
  }
  t.ok(queryPanels.length >= 20, `${queryPanels.length} panels with queries`)

  const builtins = { rateInterval: '5m', range: '6h' }
  for (const panel of queryPanels) {
    for (const target of panel.targets!) t.doesNotThrow(() => interpolate(target.expr, variableValues('.*', builtins)), `${panel.title} ${target.refId}: only defined variables`)
  }

  for (const panel of panels) {
    const { x, y, w, h } = panel.gridPos
    t.ok(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= 24, `${panel.title}: inside the 24-column grid`)
  }
  const overlaps = panels.flatMap((a, i) => panels.slice(i + 1).filter(b =>
    a.gridPos.x < b.gridPos.x + b.gridPos.w && b.gridPos.x < a.gridPos.x + a.gridPos.w &&
    a.gridPos.y < b.gridPos.y + b.gridPos.h && b.gridPos.y < a.gridPos.y + a.gridPos.h).map(b => `${a.title} / ${b.title}`))
  t.same(overlaps, [], 'no two panels overlap')

  t.same(metricNames('sum by (le) (rate(x_bucket{a="b(c)"}[5m])) / ignoring (a) group_left max(y) > bool 0 and on() vector(1)'), ['x_bucket', 'y'],
    'the metric-name reader sees selectors, not functions, labels or keywords')
})

type PromAnswer = { status: string, error?: string, errorType?: string, warnings?: string[], data?: { resultType: string, result: Array<{ metric: Record<string, string>, value?: [number, string], values?: Array<[number, string]> }> } }

/**
 * What each panel must show after the script, keyed by panel title: series must exist with these
 * label values (each object is one series to find), and with `rate`, a value above 0.
 */
const expected: Record<string, { series: Array<Record<string, string>>, positive?: boolean, value?: number }> = {
  'Fleet by phase': { series: [{ phase: 'cooldown' }], value: 2 },
  Transitions: { series: ['pending', 'cordoned', 'draining', 'remediating', 'rebooting', 'verifying', 'cooldown'].map(to => ({ to })), positive: true },
  'Evictions by result': { series: [{ result: 'evicted' }], positive: true },
  'Provider calls': { series: [{ provider: 'sim', action: 'reboot', result: 'ok' }], positive: true },
  'Drain duration over the range': { series: [{}], positive: true },
  'Webhook requests by status': { series: [{ status: '202' }, { status: '401' }] },
  'Webhook errors': { series: [{ status: '401' }] },
  'Webhook latency': { series: [{}], positive: true },
  'Alerts received': { series: [{ source: 'alertmanager', status: 'firing' }, { source: 'fault', status: 'firing' }] },
  // Both alerts arrive younger than MIN_FIRING_AGE: deferred by hysteresis, started by a later pass.
  Decisions: { series: [{ action: 'deferred' }], positive: true },
  'Blocked by rule': { series: [{}], positive: true },
  'Source of alert truth up': { series: [{ source: 'prometheus' }], value: 1 },
  'Replicas leading': { series: [{}], value: 1 },
  'Budget used per pool': { series: [{ by: 'us' }, { by: 'others' }] },
  Memory: { series: [{}], positive: true }
}

t.test('every panel query on the Prometheus that scraped a scripted remediation', { skip, timeout: 150_000 }, async t => {
  const began = Date.now()
  const dir = makeTempDir('shc-dashboard-')
  t.teardown(() => removeTempDir(dir))
  const token = randomBytes(16).toString('hex')
  const faultsToken = randomBytes(16).toString('hex')
  const tokenFile = path.join(dir, 'webhook-token')
  const faultsTokenFile = path.join(dir, 'faults-token')
  fs.writeFileSync(tokenFile, token, { mode: 0o600 })
  fs.writeFileSync(faultsTokenFile, faultsToken, { mode: 0o600 })

  const exporter = createSignalExporter({ nodes })
  const { url: exporterUrl } = await exporter.listen()
  t.teardown(() => exporter.close())
  const port = await freePort()
  const serviceUrl = `http://127.0.0.1:${port}`
  const monitoring = await startMonitoring({ exporterUrl, nodes, webhookUrl: `${serviceUrl}/v1/alerts`, webhookTokenFile: tokenFile, controllerAddress: `127.0.0.1:${port}` })
  t.teardown(() => monitoring.stop())

  const service = launch('service', process.execPath, ['src/cli.ts'], {
    logPath: path.join(dir, 'service.log'),
    // Only what the service needs; the safety rules' waits cut to seconds (each is tested on its own elsewhere).
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      CLUSTER: 'sim',
      HOST: '127.0.0.1',
      PORT: String(port),
      WEBHOOK_TOKEN_FILE: tokenFile,
      FAULTS_ENABLED: 'true',
      FAULTS_TOKEN_FILE: faultsTokenFile,
      PROMETHEUS_URL: monitoring.prometheusUrl,
      MIN_FIRING_AGE: '2s',
      STORM_SETTLE: '1s',
      VERIFY_DWELL: '2s',
      RECONCILE_INTERVAL: '1s',
      LOG_LEVEL: 'info'
    }
  })
  t.teardown(() => service.stop())
  await waitHealthy(service, `${serviceUrl}/readyz`, 30_000)
  const logs = () => `--- service ---\n${service.logTail(20)}\n${monitoring.logs()}`
  const explained = async <T> (work: Promise<T>): Promise<T> => {
    try {
      return await work
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${logs()}`)
    }
  }
  const phaseOf = async (node: string) => {
    const res = await fetch(`${serviceUrl}/v1/nodes/${node}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5000) })
    return res.ok ? (await res.json() as { phase: string }).phase : undefined
  }
  /** Until the node cools down in the service, then until Prometheus has scraped `cooled` nodes in cooldown. */
  const remediated = async (node: string, cooled: number) => {
    await explained(waitUntil(`${node} to reach cooldown`, async () => await phaseOf(node) === 'cooldown', { timeoutMs: 90_000, intervalMs: 250 }))
    await explained(waitUntil(`Prometheus to scrape ${cooled} node(s) in cooldown`, async () =>
      (await monitoring.query(`shc_nodes{job="self-healing-controller", phase="cooldown"} == ${cooled}`)).length === 1, { timeoutMs: 10_000, intervalMs: 250 }))
  }
  t.comment(`stack up after ${Date.now() - began} ms`)

  const scriptStart = Date.now()
  exporter.setFault('worker-3', 'disk')
  await remediated('worker-3', 1)
  t.comment(`worker-3 fired, was remediated and scraped after ${Date.now() - scriptStart} ms`)

  const refused = await fetch(`${serviceUrl}/v1/alerts`, { method: 'POST', headers: { authorization: 'Bearer wrong', 'content-type': 'application/json' }, body: '{}', signal: AbortSignal.timeout(5000) })
  await refused.arrayBuffer()
  t.equal(refused.status, 401, 'a webhook call with a wrong token is refused')

  const injected = await fetch(`${serviceUrl}/v1/faults`, {
    method: 'POST',
    headers: { authorization: `Bearer ${faultsToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ node: 'worker-7', reason: 'dashboard test' }),
    signal: AbortSignal.timeout(5000)
  })
  t.equal(injected.status, 202, `fault on worker-7 accepted: ${await injected.text()}`)
  await remediated('worker-7', 2)
  t.comment(`script done after ${Date.now() - scriptStart} ms`)

  const exposition = await (await fetch(`${serviceUrl}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
  const exposed = exposedNames(exposition)
  const referenced = new Set([
    ...queryPanels.flatMap(p => p.targets!.flatMap(q => metricNames(interpolate(q.expr, variableValues('.*', { rateInterval: '5m', range: '6h' }))))),
    ...metricNames(variable('pool')!.definition!.replace(/^label_values\((\w+),.*$/, '$1'))
  ])
  t.same([...referenced].filter(name => !exposed.has(name)), [], `every metric the dashboard queries is on /metrics (${referenced.size} referenced)`)
  const unshown = [...exposed].filter(name => !referenced.has(name) && !/_(bucket|sum|count)$/.test(name) && !exposed.has(`${name}_bucket`))
  if (unshown.length > 0) t.comment(`exposed but on no panel: ${unshown.join(', ')}`)

  // The pool variable, resolved the way Grafana resolves label_values(metric, label).
  const poolsUrl = new URL('/api/v1/label/pool/values', monitoring.prometheusUrl)
  poolsUrl.searchParams.set('match[]', 'shc_budget_size')
  const pools = (await (await fetch(poolsUrl, { signal: AbortSignal.timeout(5000) })).json() as { data: string[] }).data
  const exposedPools = [...new Set([...exposition.matchAll(/^shc_budget_size\{pool="([^"]+)"\}/gm)].map(m => m[1]!))].sort()
  t.same(pools, exposedPools, `the pool variable offers the controller's pools (${pools.join(', ')})`)

  // Every rate and range covers the whole script, as a dashboard opened on its time range would.
  const span = `${Math.ceil((Date.now() - scriptStart) / 1000) + 5}s`
  const end = Date.now() / 1000
  const ask = async (endpoint: 'query' | 'query_range', expr: string): Promise<PromAnswer> => {
    const url = new URL(`/api/v1/${endpoint}`, monitoring.prometheusUrl)
    url.searchParams.set('query', expr)
    if (endpoint === 'query') url.searchParams.set('time', String(end))
    else for (const [key, value] of [['start', scriptStart / 1000], ['end', end], ['step', 1]] as const) url.searchParams.set(key, String(value))
    return await (await fetch(url, { signal: AbortSignal.timeout(10_000) })).json() as PromAnswer
  }

  const titles = new Set(queryPanels.map(p => p.title))
  t.same(Object.keys(expected).filter(title => !titles.has(title)), [], 'every panel this test expects data from is on the dashboard')
  const concrete = pools[0]
  for (const [poolLabel, pool] of [['All', '.*'], [concrete ?? '(none)', concrete?.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') ?? '']] as const) {
    await t.test(`pool = ${poolLabel}`, async t => {
      for (const panel of queryPanels) {
        const results: Array<{ metric: Record<string, string>, value: number }> = []
        for (const target of panel.targets!) {
          const expr = interpolate(target.expr, variableValues(pool, { rateInterval: span, range: span }))
          const instant = await ask('query', expr)
          t.match(instant, { status: 'success', data: { resultType: 'vector' } }, `${panel.title} ${target.refId}: ${expr}`)
          t.same(instant.warnings ?? [], [], `${panel.title} ${target.refId}: no warnings`)
          for (const sample of instant.data?.result ?? []) results.push({ metric: sample.metric, value: Number(sample.value![1]) })
          if (target.range !== false) {
            const range = await ask('query_range', expr)
            t.match(range, { status: 'success', data: { resultType: 'matrix' } }, `${panel.title} ${target.refId}: as a range query`)
          }
        }
        if (pool !== '.*') {
          const foreign = results.filter(r => (r.metric.pool !== undefined && r.metric.pool !== concrete) ||
            (r.metric.scope !== undefined && r.metric.scope !== 'cluster' && !r.metric.scope.startsWith(`pool=${concrete}`)))
          t.same(foreign.map(r => r.metric), [], `${panel.title}: only pool ${concrete}`)
          continue
        }
        const want = expected[panel.title]
        if (want === undefined) continue
        for (const labels of want.series) {
          const matching = results.filter(r => Object.entries(labels).every(([k, v]) => r.metric[k] === v))
          t.ok(matching.length > 0, `${panel.title}: a series ${JSON.stringify(labels)} (got ${JSON.stringify(results.map(r => r.metric))})`)
          if (want.positive === true) t.ok(matching.some(r => Number.isFinite(r.value) && r.value > 0), `${panel.title} ${JSON.stringify(labels)}: above 0 (${matching.map(r => r.value).join(', ')})`)
          if (want.value !== undefined) t.ok(matching.some(r => r.value === want.value), `${panel.title} ${JSON.stringify(labels)}: ${want.value} (${matching.map(r => r.value).join(', ')})`)
        }
      }
    })
  }
  t.comment(`whole test in ${Math.round((Date.now() - began) / 1000)} s`)
})
