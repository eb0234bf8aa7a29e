import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { alert } from '../support/core.ts'
import { adminToken, buildTestApp, faultsToken, fixtureUrl, webhookToken } from '../support/app.ts'
import { until } from '../support/sim.ts'

const firing = JSON.parse(readFileSync(fixtureUrl('firing-single.json'), 'utf8'))
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const payload = (alerts: unknown[]) => ({ ...firing, alerts })

t.test('POST /v1/alerts answers 202 with a decision per alert', async t => {
  const { app, close } = await buildTestApp()
  t.teardown(close)
  const res = await app.inject({ method: 'POST', url: '/v1/alerts', headers: bearer(webhookToken), payload: firing })
  t.equal(res.statusCode, 202)
  const body = res.json()
  t.equal(body.dryRun, false)
  t.match(body.decisions, [{ node: 'worker-3', alertname: 'NodeDiskIOPSSaturated', fingerprint: 'e073b393f8042a40', action: 'remediate' }])
})

t.test('unknown fields from newer Alertmanagers are accepted', async t => {
  const { app, close } = await buildTestApp()
  t.teardown(close)
  const res = await app.inject({ method: 'POST', url: '/v1/alerts', headers: bearer(webhookToken), payload: { ...firing, notification_reason: 'x', routeLabels: {}, alerts: [{ ...firing.alerts[0], extra: 1 }] } })
  t.equal(res.statusCode, 202)
})

t.test('malformed bodies get a 400 naming the field', async t => {
  const { app, close } = await buildTestApp()
  t.teardown(close)
  const cases: Array<[unknown, RegExp]> = [
    [payload([{ ...firing.alerts[0], startsAt: 'yesterday' }]), /alerts\/0\/startsAt/],
    [payload([{ ...firing.alerts[0], fingerprint: undefined }]), /alerts\/0.*fingerprint/],
    [payload([{ ...firing.alerts[0], status: 'burning' }]), /alerts\/0\/status/],
    [{ ...firing, version: '3' }, /version/],
    [{ ...firing, alerts: undefined }, /alerts/]
  ]
  for (const [body, field] of cases) {
    const res = await app.inject({ method: 'POST', url: '/v1/alerts', headers: bearer(webhookToken), payload: body as object })
    t.equal(res.statusCode, 400)
    t.match(res.json().message, field)
  }
  const broken = await app.inject({ method: 'POST', url: '/v1/alerts', headers: { ...bearer(webhookToken), 'content-type': 'application/json' }, payload: '{"version":' })
  t.equal(broken.statusCode, 400)
})

t.test('nothing is coerced: a wrong type is a 400 naming the field, and nothing is done', async t => {
  const { app, sim, close } = await buildTestApp()
  t.teardown(close)
  const [first] = firing.alerts
  const cases: Array<[string, unknown, RegExp]> = [
    ['node label as a list', payload([{ ...first, labels: { ...first.labels, node: ['worker-1'] } }]), /body\/alerts\/0\/labels\/node must be string/],
    ['opt-in label as a list', payload([{ ...first, labels: { ...first.labels, remediation: ['drain'] } }]), /body\/alerts\/0\/labels\/remediation must be string/],
    ['status as a list', payload([{ ...first, status: ['firing'] }]), /body\/alerts\/0\/status/],
    ['fingerprint as a number', payload([{ ...first, fingerprint: 1234567 }]), /body\/alerts\/0\/fingerprint must be string/],
    ['version as a number', { ...firing, version: 4 }, /body\/version must be string/],
    ['truncatedAlerts as a string', { ...firing, truncatedAlerts: '3' }, /body\/truncatedAlerts must be integer/],
    ['alerts as an object', { ...firing, alerts: first }, /body\/alerts must be array/]
  ]
  for (const [what, body, message] of cases) {
    const res = await app.inject({ method: 'POST', url: '/v1/alerts', headers: bearer(webhookToken), payload: body as object })
    t.equal(res.statusCode, 400, what)
    t.match(res.json().message, message, what)
  }
  t.same(sim.mutations, [], 'no rejected notification changed anything')
})

t.test('impossible dates and Go\'s zero time as a start are 400s naming the field; zero time as an end is "no end"', async t => {
  const { app, close } = await buildTestApp()
  t.teardown(close)
  const [first] = firing.alerts
  const post = (alert: object) => app.inject({ method: 'POST', url: '/v1/alerts', headers: bearer(webhookToken), payload: payload([alert]) })
  const rejected: Array<[object, RegExp]> = [
    [{ ...first, startsAt: '2026-02-30T10:00:00Z' }, /body\/alerts\/0\/startsAt must match format "date-time"/],
    [{ ...first, startsAt: '2026-11-23T24:00:00Z' }, /body\/alerts\/0\/startsAt must match format "date-time"/],
    [{ ...first, endsAt: '2026-04-31T00:00:00Z' }, /body\/alerts\/0\/endsAt must match format "date-time"/],
    [{ ...first, startsAt: '0001-01-01T00:00:00Z' }, /body\/alerts\/0\/startsAt is no start time/],
    [{ ...first, startsAt: '1000-06-01T00:00:00Z' }, /body\/alerts\/0\/startsAt is no start time/]
  ]
  for (const [alert, message] of rejected) {
    const res = await post(alert)
    t.equal(res.statusCode, 400)
    t.match(res.json().message, message)
  }
  t.equal(first.endsAt, '0001-01-01T00:00:00Z', 'the captured firing alert ends at Go\'s zero time')
  t.equal((await post(first)).statusCode, 202)
})

t.test('/v1/faults takes its fields exactly: no coercion, no silently dropped field', async t => {
  const { app, sim, close } = await buildTestApp({}, { faultsEnabled: true })
  t.teardown(close)
  const cases: Array<[object, RegExp]> = [
    [{ node: 'worker-3', dryRun: null }, /body\/dryRun must be boolean/],
    [{ node: 'worker-3', dryRun: 0 }, /body\/dryRun must be boolean/],
    [{ node: 'worker-3', dryRun: 'true' }, /body\/dryRun must be boolean/],
    [{ node: ['worker-3'] }, /body\/node must be string/],
    [{ node: 'worker-3', dryrun: true }, /body\/dryrun is not a known field/]
  ]
  for (const [body, message] of cases) {
    const res = await app.inject({ method: 'POST', url: '/v1/faults', headers: bearer(faultsToken), payload: body })
    t.equal(res.statusCode, 400, JSON.stringify(body))
    t.match(res.json().message, message)
  }
  t.same(sim.mutations, [], 'no rejected fault changed anything')
})

t.test('credentials: missing or wrong → 401; the fault token does not open the webhook', async t => {
  const { app, close } = await buildTestApp()
  t.teardown(close)
  const missing = await app.inject({ method: 'POST', url: '/v1/alerts', payload: firing })
  t.equal(missing.statusCode, 401)
  t.equal(missing.headers['www-authenticate'], 'Bearer')
  t.match(missing.json().message, /missing Authorization/)
  for (const token of ['wrong', `${webhookToken}x`, faultsToken]) {
    const res = await app.inject({ method: 'POST', url: '/v1/alerts', headers: bearer(token), payload: firing })
    t.equal(res.statusCode, 401, token)
  }
  t.equal((await app.inject({ method: 'GET', url: '/v1/nodes' })).statusCode, 401)
})

t.test('too large → 413; not JSON → 415', async t => {
  const { app, close } = await buildTestApp({}, { bodyLimit: 2048 })
  t.teardown(close)
  const big = payload(Array.from({ length: 5 }, (_, i) => ({ ...firing.alerts[0], fingerprint: `f${i}` })))
  t.equal((await app.inject({ method: 'POST', url: '/v1/alerts', headers: bearer(webhookToken), payload: big })).statusCode, 413)
  const text = await app.inject({ method: 'POST', url: '/v1/alerts', headers: { ...bearer(webhookToken), 'content-type': 'text/plain' }, payload: 'hello' })
  t.equal(text.statusCode, 415)
})

t.test('cluster unreachable → 503 with Retry-After, so Alertmanager retries', async t => {
  const { app, sim, close } = await buildTestApp()
  t.teardown(close)
  sim.setReachable(false)
  const res = await app.inject({ method: 'POST', url: '/v1/alerts', headers: bearer(webhookToken), payload: firing })
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '10')
  t.match(res.json().message, /cannot decide now/)
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503)
  sim.setReachable(true)
  t.equal((await app.inject({ method: 'POST', url: '/v1/alerts', headers: bearer(webhookToken), payload: firing })).statusCode, 202)
})

t.test('POST /v1/faults: off by default, its own credential, the same safety rules', async t => {
  const off = await buildTestApp()
  t.teardown(off.close)
  t.equal((await off.app.inject({ method: 'POST', url: '/v1/faults', headers: bearer(faultsToken), payload: { node: 'worker-3' } })).statusCode, 404)

  const { app, sim, engine, close } = await buildTestApp({}, { faultsEnabled: true })
  t.teardown(close)
  t.equal((await app.inject({ method: 'POST', url: '/v1/faults', headers: bearer(webhookToken), payload: { node: 'worker-3' } })).statusCode, 401)
  const bad = await app.inject({ method: 'POST', url: '/v1/faults', headers: bearer(faultsToken), payload: { node: 'worker-3', signal: 'has spaces' } })
  t.equal(bad.statusCode, 400)
  t.match(bad.json().message, /signal/)
  const dry = await app.inject({ method: 'POST', url: '/v1/faults', headers: bearer(faultsToken), payload: { node: 'worker-3', dryRun: true } })
  t.match(dry.json(), { dryRun: true, decisions: [{ node: 'worker-3', alertname: 'ManualFault', action: 'remediate' }] })
  t.same(sim.mutations, [], 'a dry-run fault changes nothing')
  const real = await app.inject({ method: 'POST', url: '/v1/faults', headers: bearer(faultsToken), payload: { node: 'worker-3', signal: 'DbLatencyHigh', reason: 'game day' } })
  t.equal(real.json().decisions[0].action, 'remediate')
  const unknown = await app.inject({ method: 'POST', url: '/v1/faults', headers: bearer(faultsToken), payload: { node: 'worker-42' } })
  t.match(unknown.json().decisions[0], { action: 'ignored', reason: 'node worker-42 is not in the cluster' })
  await until('worker-3 cooling down', async () => (await engine.node('worker-3'))?.phase === 'cooldown')
  const status = await app.inject({ method: 'GET', url: '/v1/nodes/worker-3', headers: bearer(faultsToken) })
  t.match(status.json(), { phase: 'cooldown', alert: { alertname: 'DbLatencyHigh', source: 'fault', summary: 'game day' } })
})

t.test('a young fault is deferred by hysteresis like any alert', async t => {
  const { app, close } = await buildTestApp({ MIN_FIRING_AGE: '2m' }, { faultsEnabled: true })
  t.teardown(close)
  const res = await app.inject({ method: 'POST', url: '/v1/faults', headers: bearer(faultsToken), payload: { node: 'worker-3' } })
  t.match(res.json().decisions[0], { action: 'deferred', rule: 'hysteresis' })
})

t.test('GET /v1/nodes lists tracked nodes with state, alert, cooldown and transitions', async t => {
  const { app, engine, close } = await buildTestApp()
  t.teardown(close)
  t.same((await app.inject({ method: 'GET', url: '/v1/nodes', headers: bearer(webhookToken) })).json(), { nodes: [] })
  await app.inject({ method: 'POST', url: '/v1/alerts', headers: bearer(webhookToken), payload: firing })
  await until('worker-3 cooling down', async () => (await engine.node('worker-3'))?.phase === 'cooldown')
  const { nodes } = (await app.inject({ method: 'GET', url: '/v1/nodes', headers: bearer(webhookToken) })).json()
  t.equal(nodes.length, 1)
  t.match(nodes[0], { name: 'worker-3', pool: 'app', zone: 'zone-a', phase: 'cooldown', alert: { fingerprint: 'e073b393f8042a40' }, outcome: 'remediated' })
  t.ok(Date.parse(nodes[0].cooldownUntil) > Date.now())
  t.same(nodes[0].transitions.map((x: { to: string }) => x.to), ['pending', 'cordoned', 'draining', 'remediating', 'rebooting', 'verifying', 'cooldown'])
  const untracked = await app.inject({ method: 'GET', url: '/v1/nodes/worker-1', headers: bearer(webhookToken) })
  t.match(untracked.json(), { name: 'worker-1', phase: 'healthy', since: null, transitions: [] })
  const missing = await app.inject({ method: 'GET', url: '/v1/nodes/worker-99', headers: bearer(webhookToken) })
  t.equal(missing.statusCode, 404)
  t.match(missing.json().message, /worker-99/)
})

t.test('probes, metrics and the OpenAPI document', async t => {
  const { app, close } = await buildTestApp()
  t.teardown(close)
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
  await app.inject({ method: 'POST', url: '/v1/alerts', headers: bearer(webhookToken), payload: payload([alert('worker-1', { labels: { remediation: 'nope' } })]) })
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200)
  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(metrics.statusCode, 200)
  t.match(metrics.body, /shc_decisions_total\{action="ignored"\} 1/)
  t.match(metrics.body, /shc_policy_blocked_total\{rule="validation"\} 1/)
  const lint = spawnSync('promtool', ['check', 'metrics'], { input: metrics.body, encoding: 'utf8' })
  t.equal(lint.error, undefined, 'promtool is installed (.ci/run installs the prometheus package)')
  t.equal(lint.status, 0, `promtool check metrics: ${lint.stdout}${lint.stderr}`)
  const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json()
  t.equal(doc.openapi.startsWith('3.'), true)
  t.ok(doc.paths['/v1/alerts'].post.requestBody)
  t.ok(doc.paths['/v1/nodes/{name}'].get)
})

t.test('without credentials (the local simulated mode) every endpoint is open', async t => {
  const { app, close } = await buildTestApp({}, { credentials: undefined })
  t.teardown(close)
  t.equal((await app.inject({ method: 'POST', url: '/v1/alerts', payload: firing })).statusCode, 202)
})

t.test('faults end: by their ttl, or by DELETE /v1/faults/{node}; GET /v1/faults lists the live ones', async t => {
  const { app, engine, close } = await buildTestApp({ MIN_FIRING_AGE: '2m' }, { faultsEnabled: true })
  t.teardown(close)
  const inject = (payload: object) => app.inject({ method: 'POST', url: '/v1/faults', headers: bearer(faultsToken), payload })
  t.equal((await inject({ node: 'worker-3', ttl: '0s' })).statusCode, 400, 'a fault must last')
  t.equal((await inject({ node: 'worker-3', ttl: 'forever' })).statusCode, 400)
  t.match((await inject({ node: 'worker-3', ttl: '8d' })).json().message, /body\/ttl must be .* at most 7d/)
  await inject({ node: 'worker-3', signal: 'DiskGameDay', ttl: '300ms' })
  await inject({ node: 'worker-6', signal: 'DbGameDay' })
  const listed = (await app.inject({ method: 'GET', url: '/v1/faults', headers: bearer(faultsToken) })).json().faults
  t.same(listed.map((f: { node: string, alertname: string }) => `${f.node}:${f.alertname}`).sort(), ['worker-3:DiskGameDay', 'worker-6:DbGameDay'])
  t.ok(Date.parse(listed.find((f: { node: string }) => f.node === 'worker-6').endsAt) - Date.now() > 50 * 60_000, 'the default ttl is 1h')
  await until('worker-3\'s fault expired by itself', async () => (await engine.node('worker-3'))?.phase === 'cancelled')
  t.match((await engine.node('worker-3'))!.reason, /DiskGameDay ended at/)
  const ended = await app.inject({ method: 'DELETE', url: '/v1/faults/worker-6', headers: bearer(faultsToken) })
  t.equal(ended.statusCode, 200)
  t.match(ended.json().decisions, [{ node: 'worker-6', action: 'cancelled' }])
  t.same((await app.inject({ method: 'GET', url: '/v1/faults', headers: bearer(faultsToken) })).json().faults, [])
  t.equal((await app.inject({ method: 'DELETE', url: '/v1/faults/worker-6', headers: bearer(faultsToken) })).statusCode, 404, 'nothing left to end')
  t.equal((await app.inject({ method: 'DELETE', url: '/v1/faults/worker-6', headers: bearer(webhookToken) })).statusCode, 401, 'the faults token only')
})

t.test('pause: its own credential, a reason required, an expiry in the future; GET shows it, DELETE lifts it', async t => {
  const { app, sim, close } = await buildTestApp({ REMEDIATION_WINDOWS: 'Mon-Sun 00:00-24:00 UTC' })
  t.teardown(close)
  const put = (url: string, payload: object, token = adminToken) => app.inject({ method: 'PUT', url, headers: bearer(token), payload })
  for (const token of [webhookToken, faultsToken, 'wrong']) {
    t.equal((await put('/v1/pause/cluster', { reason: 'freeze' }, token)).statusCode, 401, 'neither the webhook nor the faults token pauses')
    t.equal((await app.inject({ method: 'DELETE', url: '/v1/pause/cluster', headers: bearer(token) })).statusCode, 401, 'nor lifts one')
  }
  const bad: Array<[string, object, RegExp]> = [
    ['/v1/pause/cluster', {}, /body must have required property 'reason'/],
    ['/v1/pause/cluster', { reason: '' }, /body\/reason must NOT have fewer than 1 characters/],
    ['/v1/pause/cluster', { reason: 'x', until: 'tomorrow' }, /body\/until must match format "date-time"/],
    ['/v1/pause/cluster', { reason: 'x', until: '2020-01-01T00:00:00Z' }, /body\/until must be in the future/],
    ['/v1/pause/cluster', { reason: 'x', for: '1h' }, /body\/for is not a known field/],
    ['/v1/pause/cluster', { reason: 7 }, /body\/reason must be string/]
  ]
  for (const [url, payload, message] of bad) {
    const res = await put(url, payload)
    t.equal(res.statusCode, 400, JSON.stringify(payload))
    t.match(res.json().message, message)
  }
  t.same((await sim.readControllerState()).annotations, {}, 'nothing was written for a bad request')
  const until = new Date(Date.now() + 3_600_000).toISOString()
  const set = await put('/v1/pause/pool/data', { reason: 'db migration', by: 'bob', until })
  t.equal(set.statusCode, 200)
  t.match(set.json(), { pauses: [{ scope: 'pool', pool: 'data', reason: 'db migration', by: 'bob', until }], windows: { spec: 'Mon-Sun 00:00-24:00 UTC', open: true, nextOpening: null } })
  t.equal((await put('/v1/pause/cluster', { reason: 'freeze' })).json().pauses.length, 2)
  const read = await app.inject({ method: 'GET', url: '/v1/pause', headers: bearer(webhookToken) })
  t.equal(read.statusCode, 200, 'any credential reads')
  t.match(read.json().pauses, [{ scope: 'cluster', reason: 'freeze', by: 'admin API' }, { scope: 'pool', pool: 'data' }])
  t.match((await sim.readControllerState()).annotations['self-healing-controller.io/pauses'], /"pool\/data":\{"reason":"db migration","by":"bob"/, 'persisted on the Lease')
  const decisions = (await app.inject({ method: 'POST', url: '/v1/alerts', headers: bearer(webhookToken), payload: firing })).json().decisions
  t.match(decisions, [{ action: 'deferred', rule: 'paused' }])
  t.equal((await app.inject({ method: 'DELETE', url: '/v1/pause/cluster', headers: bearer(adminToken) })).json().pauses.length, 1)
  t.same((await app.inject({ method: 'DELETE', url: '/v1/pause/pool/data', headers: bearer(adminToken) })).json().pauses, [])
  t.equal((await sim.readControllerState()).annotations['self-healing-controller.io/pauses'], undefined, 'the annotation is gone')
  t.equal((await app.inject({ method: 'DELETE', url: '/v1/pause/pool/data', headers: bearer(adminToken) })).statusCode, 200, 'lifting what is not paused is a no-op')
})

t.test('DRY_RUN through HTTP: a replayed notification is a duplicate and the semaphore holds the next node, as in a real run; the cluster sees no write', async t => {
  const { app, sim, close } = await buildTestApp({ DRY_RUN: 'true', STORM_SETTLE: '0s' })
  t.teardown(close)
  const writesBefore = sim.mutations.length
  const post = async (body: unknown) => (await app.inject({ method: 'POST', url: '/v1/alerts', headers: bearer(webhookToken), payload: body as object })).json()
  const first = await post(firing)
  t.equal(first.dryRun, true)
  t.match(first.decisions, [{ node: 'worker-3', action: 'remediate' }])
  for (const replay of [1, 2]) t.match((await post(firing)).decisions, [{ node: 'worker-3', action: 'ignored', rule: 'validation', reason: /duplicate|already/ }], `replay ${replay} is not news`)
  const other = payload([{ ...firing.alerts[0], fingerprint: 'other', labels: { ...firing.alerts[0].labels, node: 'worker-7' } }])
  t.match((await post(other)).decisions, [{ node: 'worker-7', action: 'deferred', rule: 'semaphore' }], 'the shadow holds worker-3\'s slot')
  t.equal(sim.mutations.length, writesBefore, 'no write reached the cluster')
})

t.test('DELETE /v1/budget/departed/:node: the admin token only; an unknown node is a 404 naming it', async t => {
  const { app, close } = await buildTestApp()
  t.teardown(close)
  const del = (token: string) => app.inject({ method: 'DELETE', url: '/v1/budget/departed/worker-6', headers: bearer(token) })
  t.equal((await del(webhookToken)).statusCode, 401)
  t.equal((await del(faultsToken)).statusCode, 401)
  const res = await del(adminToken)
  t.equal(res.statusCode, 404)
  t.match(res.json().message, /no departed node worker-6/)
})
