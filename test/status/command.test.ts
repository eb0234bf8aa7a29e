import t, { type Test } from 'tap'
import { createServer, type Server } from 'node:http'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFile } from 'node:child_process'
import { promisify, stripVTControlCharacters } from 'node:util'
import type { AddressInfo } from 'node:net'
import { colorWanted, statusCommand, STATUS_USAGE, type StatusIO } from '../../src/status/command.ts'
import type { BudgetAnswer, NodeStatus, NodesAnswer, PauseAnswer } from '../../src/status/api.ts'
import { adminToken, buildTestApp, webhookToken } from '../support/app.ts'
import { notification } from '../support/scenario.ts'
import { phaseOf, until } from '../support/sim.ts'

const T0 = Date.parse('2026-01-12T12:00:00.000Z')
const ago = (ms: number) => new Date(T0 - ms).toISOString()
const ahead = (ms: number) => new Date(T0 + ms).toISOString()
const s = 1000
const m = 60 * s
const h = 60 * m
const TOKEN = 's3cret'

const healthy = (name: string, pool: string, zone: string): NodeStatus => ({
  name, pool, zone, unschedulable: false, phase: 'healthy', since: null, reason: '', alert: null, deferred: null, outOfService: null, cooldownUntil: null, drainDeadline: null, outcome: null
})

const nodes: NodesAnswer = {
  nodes: [
    healthy('gpu-3', 'gpu', 'c'),
    { ...healthy('app-10', 'app', 'b'), phase: 'cooldown', since: ago(20 * m), reason: 'back in service after reboot', cooldownUntil: ahead(10 * m), outcome: 'rebooted' },
    { ...healthy('app-1', 'app', 'a'), unschedulable: true, phase: 'draining', since: ago(3 * m + 20 * s), reason: 'NodeKernelDeadlock firing', alert: { alertname: 'NodeKernelDeadlock', fingerprint: 'f00d', startsAt: ago(9 * m), status: 'firing', action: 'reboot', source: 'alertmanager', receivedAt: ago(4 * m), lastSeen: ago(4 * m) }, outOfService: { cause: 'remediation', by: 'us' }, drainDeadline: ahead(7 * m) },
    healthy('app-2', 'app', 'a'),
    { ...healthy('app-3', 'app', 'b'), phase: 'pending', since: ago(90 * s), reason: 'NodeDiskPressure firing', deferred: { rule: 'budget', reason: 'pool app has 1 of 1 out of service', scope: 'pool app' } },
    { ...healthy('data-1', 'data', 'a'), unschedulable: true, phase: 'failed', since: ago(2 * h + 5 * m), reason: 'drain did not finish in 15m', outcome: 'drain-timeout' },
    { ...healthy('data-2', 'data', 'a'), unschedulable: true, outOfService: { cause: 'cordoned', by: 'others' } },
    { ...healthy('gpu-1', 'gpu', 'c'), phase: 'pending', since: ago(10 * m), reason: 'GpuXidErrors firing', deferred: { rule: 'window', reason: 'outside REMEDIATION_WINDOWS; next opening 2026-01-13T07:00:00.000Z' } },
    { ...healthy('gpu-2', 'gpu', 'c'), phase: 'quarantined', since: ago(50 * h), reason: 'flapping: 3 re-fires in 1h' }
  ]
}

const budget: BudgetAnswer = {
  maxConcurrentDrains: 2,
  ours: 2,
  pools: [
    {
      pool: 'gpu', size: 3, budget: 1, outOfService: { ours: 0, others: 0, causes: {} }, breaker: { open: false },
      zones: [{ zone: 'c', size: 3, budget: 1, outOfService: { ours: 0, others: 0, causes: {} } }]
    },
    {
      pool: 'app', size: 4, budget: 1, outOfService: { ours: 1, others: 0, causes: { remediation: 1 } }, breaker: { open: false },
      zones: [
        { zone: 'b', size: 2, budget: 1, outOfService: { ours: 0, others: 0, causes: {} } },
        { zone: 'a', size: 2, budget: 1, outOfService: { ours: 1, others: 0, causes: { remediation: 1 } } }
      ]
    },
    {
      pool: 'data', size: 2, budget: 1, outOfService: { ours: 1, others: 1, causes: { remediation: 1, cordoned: 1 } }, breaker: { open: true, since: ago(12 * m) },
      zones: [{ zone: 'a', size: 2, budget: 1, outOfService: { ours: 1, others: 1, causes: { remediation: 1, cordoned: 1 } } }]
    }
  ]
}

const pause: PauseAnswer = {
  pauses: [
    { scope: 'cluster', reason: 'etcd upgrade', by: 'alice', at: ago(5 * m), until: ahead(55 * m) },
    { scope: 'pool', pool: 'gpu', reason: 'driver rollout', by: 'ops-bot', at: ago(h) }
  ],
  windows: { spec: 'Mon-Fri 08:00-18:00 Europe/Berlin', open: false, nextOpening: '2026-01-13T07:00:00.000Z' }
}

const expectedTable = [
  'NODES: 7 of 9 shown (--all lists the healthy ones)',
  'POOL  ZONE  NODE    PHASE        SINCE     WHY',
  'app   a     app-1   draining     3m ago    NodeKernelDeadlock firing · drain deadline in 7m',
  'app   b     app-3   pending      1m ago    held by budget (pool app): pool app has 1 of 1 out of service',
  'app   b     app-10  cooldown     20m ago   back in service after reboot · outcome: rebooted · cooldown ends in 10m',
  'data  a     data-1  failed       2h5m ago  drain did not finish in 15m · outcome: drain-timeout',
  'data  a     data-2  healthy      -         out of service by others: cordoned',
  'gpu   c     gpu-1   pending      10m ago   held by window: outside REMEDIATION_WINDOWS; next opening 2026-01-13T07:00:00.000Z',
  'gpu   c     gpu-2   quarantined  50h ago   flapping: 3 re-fires in 1h',
  '',
  'BUDGET: 2 out of service through us · at most 2 drains at once',
  'pool app (4 nodes): 1/1 out of service (ours 1, others 0) · causes: remediation 1 · breaker closed',
  '  zone a (2 nodes): 1/1 out of service (ours 1, others 0) · causes: remediation 1',
  '  zone b (2 nodes): 0/1 out of service (ours 0, others 0)',
  'pool data (2 nodes): 2/1 out of service (ours 1, others 1) · causes: cordoned 1, remediation 1 · breaker OPEN since 12m ago',
  'pool gpu (3 nodes): 0/1 out of service (ours 0, others 0) · breaker closed',
  '',
  'PAUSES:',
  '  cluster paused by alice 5m ago: etcd upgrade · until 2026-01-12T12:55:00.000Z (in 55m)',
  '  pool gpu paused by ops-bot 1h ago: driver rollout · until lifted',
  '',
  'WINDOWS: Mon-Fri 08:00-18:00 Europe/Berlin · closed, next opening 2026-01-13T07:00:00.000Z (in 19h)'
]

interface Fake { url: string, requests: Array<{ path: string, authorization: string | undefined }>, answers: Record<string, unknown> }

async function fakeApi (t: Test, answers: Record<string, unknown> = { '/v1/nodes': nodes, '/v1/budget': budget, '/v1/pause': pause }): Promise<Fake> {
  const fake: Fake = { url: '', requests: [], answers }
  const server: Server = createServer((request, response) => {
    fake.requests.push({ path: request.url ?? '', authorization: request.headers.authorization })
    response.setHeader('content-type', 'application/json')
    if (request.headers.authorization !== `Bearer ${TOKEN}`) {
      response.writeHead(401, { 'www-authenticate': 'Bearer' })
      response.end(JSON.stringify({ statusCode: 401, error: 'Unauthorized', message: request.headers.authorization === undefined ? 'missing Authorization: Bearer header' : 'invalid bearer token' }))
      return
    }
    const answer = fake.answers[(request.url ?? '').replace(/^\/prefix/, '')]
    if (answer === undefined) {
      response.writeHead(404)
      response.end(JSON.stringify({ statusCode: 404, error: 'Not Found', message: `Route GET:${request.url} not found` }))
      return
    }
    response.end(typeof answer === 'string' ? answer : JSON.stringify(answer))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => server.close(() => resolve())))
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return fake
}

async function run (args: string[], io: Partial<StatusIO> = {}): Promise<{ code: number, out: string[], err: string[] }> {
  const out: string[] = []
  const err: string[] = []
  const code = await statusCommand(args, { out: line => out.push(line), err: line => err.push(line), env: { SHC_TOKEN: TOKEN }, color: false, now: () => T0, ...io })
  return { code, out, err }
}

t.test('the fleet table, budget, pauses and windows, line by line', async t => {
  const fake = await fakeApi(t)
  const { code, out, err } = await run(['--url', fake.url])
  t.equal(code, 0)
  t.same(err, [])
  t.equal(out.length, expectedTable.length)
  for (const [i, line] of expectedTable.entries()) t.equal(out[i], line, `line ${i + 1}`)
  t.same(fake.requests.map(r => r.path).sort(), ['/v1/budget', '/v1/nodes', '/v1/pause'])
  t.ok(fake.requests.every(r => r.authorization === `Bearer ${TOKEN}`), 'every request carries the token')
})

t.test('--all lists the healthy nodes too, in pool, zone, node order', async t => {
  const fake = await fakeApi(t)
  const { code, out } = await run(['--url', fake.url, '--all'])
  t.equal(code, 0)
  t.equal(out[0], 'NODES: 9')
  t.same(out.slice(2, 11).map(line => line.split(/\s+/).slice(0, 4).join(' ')), [
    'app a app-1 draining',
    'app a app-2 healthy',
    'app b app-3 pending',
    'app b app-10 cooldown',
    'data a data-1 failed',
    'data a data-2 healthy',
    'gpu c gpu-1 pending',
    'gpu c gpu-2 quarantined',
    'gpu c gpu-3 healthy'
  ])
})

t.test('an all-healthy fleet, no pauses, always open', async t => {
  const fake = await fakeApi(t, {
    '/v1/nodes': { nodes: [healthy('a-1', 'a', 'z')] },
    '/v1/budget': { maxConcurrentDrains: 1, ours: 0, pools: [{ pool: 'a', size: 1, budget: 1, outOfService: { ours: 0, others: 0, causes: {} }, breaker: { open: false }, zones: [] }] },
    '/v1/pause': { pauses: [], windows: { spec: '', open: true, nextOpening: null } }
  })
  const { code, out } = await run(['--url', fake.url])
  t.equal(code, 0)
  t.same(out, [
    'NODES: all 1 healthy and in service',
    '',
    'BUDGET: 0 out of service through us · at most 1 drain at once',
    'pool a (1 node): 0/1 out of service (ours 0, others 0) · breaker closed',
    '',
    'PAUSES: none',
    '',
    'WINDOWS: always open (no REMEDIATION_WINDOWS)'
  ])
})

t.test('an open window says so', async t => {
  const fake = await fakeApi(t, { '/v1/nodes': nodes, '/v1/budget': budget, '/v1/pause': { pauses: [], windows: { spec: 'Mon-Fri 08:00-18:00 Europe/Berlin', open: true, nextOpening: null } } })
  const { out } = await run(['--url', fake.url])
  t.equal(out.at(-1), 'WINDOWS: Mon-Fri 08:00-18:00 Europe/Berlin · open now')
})

t.test('--json prints the three answers as one object', async t => {
  const fake = await fakeApi(t)
  const { code, out } = await run(['--url', fake.url, '--json'])
  t.equal(code, 0)
  t.same(JSON.parse(out.join('\n')), { nodes: nodes.nodes, budget, pauses: pause.pauses, windows: pause.windows })
})

t.test('colours: phases coloured, the same text once the colours are stripped', async t => {
  const fake = await fakeApi(t)
  const plain = await run(['--url', fake.url])
  const coloured = await run(['--url', fake.url], { color: true })
  t.same(coloured.out.map(line => stripVTControlCharacters(line)), plain.out)
  t.match(coloured.out[2], '\u001b[33mdraining   \u001b[39m', 'draining in yellow, padded inside the colour')
  t.match(coloured.out[5], '\u001b[31mfailed', 'failed in red')
  t.match(coloured.out.find(line => line.includes('breaker OPEN')), '\u001b[31mbreaker OPEN')
  t.equal(colorWanted({ isTTY: true }, {}), true)
  t.equal(colorWanted({ isTTY: true }, { NO_COLOR: '1' }), false)
  t.equal(colorWanted({ isTTY: true }, { NO_COLOR: '' }), true, 'an empty NO_COLOR does not count')
  t.equal(colorWanted({ isTTY: false }, {}), false)
  t.equal(colorWanted({}, {}), false)
})

t.test('the token: --token-file wins over SHC_TOKEN; none or a wrong one is a 401, exit 1', async t => {
  const fake = await fakeApi(t)
  const dir = await mkdtemp(join(tmpdir(), 'shc-status-'))
  const good = join(dir, 'token')
  await writeFile(good, `${TOKEN}\n`)
  const fromFile = await run(['--url', fake.url, '--token-file', good], { env: { SHC_TOKEN: 'wrong' } })
  t.equal(fromFile.code, 0)

  const wrong = await run(['--url', fake.url], { env: { SHC_TOKEN: 'wrong' } })
  t.equal(wrong.code, 1)
  t.same(wrong.out, [])
  t.match(wrong.err[0], new RegExp(`^status: ${fake.url}/v1/(nodes|budget|pause) answered 401 Unauthorized: invalid bearer token \\(pass the token with --token-file FILE or SHC_TOKEN\\)$`))

  const none = await run(['--url', fake.url], { env: {} })
  t.equal(none.code, 1)
  t.match(none.err[0], 'answered 401 Unauthorized: missing Authorization: Bearer header')

  const missing = await run(['--url', fake.url, '--token-file', join(dir, 'nope')])
  t.equal(missing.code, 2)
  t.match(missing.err[0], `status: --token-file ${join(dir, 'nope')}: cannot read: ENOENT`)
  const empty = join(dir, 'empty')
  await writeFile(empty, '\n')
  t.same((await run(['--url', fake.url, '--token-file', empty])).err[0], `status: --token-file ${empty}: the file is empty`)
})

t.test('an unreachable URL is exit 1 with the URL and the cause', async t => {
  const closed = createServer()
  await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve))
  const port = (closed.address() as AddressInfo).port
  await new Promise<void>(resolve => closed.close(() => resolve()))
  const { code, out, err } = await run(['--url', `http://127.0.0.1:${port}`])
  t.equal(code, 1)
  t.same(out, [])
  t.match(err[0], new RegExp(`^status: cannot reach http://127\\.0\\.0\\.1:${port}/v1/(nodes|budget|pause): connect ECONNREFUSED 127\\.0\\.0\\.1:${port}$`))
})

t.test('a server that is not this API: a path prefix is kept, a wrong answer is exit 1', async t => {
  const fake = await fakeApi(t, { '/v1/nodes': nodes, '/v1/budget': budget, '/v1/pause': { pauses: [] } })
  const { code, err } = await run(['--url', `${fake.url}/prefix/`])
  t.equal(code, 1)
  t.same(err, [`status: ${fake.url}/prefix/v1/pause answered without a "windows" object: is this a self-healing-controller?`])
  t.ok(fake.requests.every(r => r.path.startsWith('/prefix/v1/')), 'asked under the prefix')

  const notJson = await fakeApi(t, { '/v1/nodes': '<html>', '/v1/budget': budget, '/v1/pause': pause })
  t.same((await run(['--url', notJson.url])).err, [`status: ${notJson.url}/v1/nodes answered 200 but not with JSON`])

  const old = await fakeApi(t, { '/v1/nodes': nodes, '/v1/pause': pause })
  t.same((await run(['--url', old.url])).err, [`status: ${old.url}/v1/budget answered 404 Not Found: Route GET:/v1/budget not found`])
})

t.test('bad usage is exit 2 with the usage text', async t => {
  for (const [args, problem] of [
    [['--bogus'], "status: Unknown option '--bogus'"],
    [['extra'], 'status: Unexpected argument'],
    [['--url'], "status: Option '--url <value>' argument missing"],
    [['--url', 'not a url'], 'status: --url not a url: not a URL; expected e.g. http://127.0.0.1:8080'],
    [['--url', 'ftp://example.com'], 'status: --url ftp://example.com: expected an http:// or https:// URL']
  ] as const) {
    const { code, out, err } = await run([...args])
    t.equal(code, 2, args.join(' '))
    t.same(out, [])
    t.match(err[0], problem)
    t.equal(err[1], STATUS_USAGE)
  }
  const help = await run(['--help'])
  t.equal(help.code, 0)
  t.same(help.out, [STATUS_USAGE])
})

t.test('the CLI dispatches status, without colours when stdout is not a terminal', async t => {
  const fake = await fakeApi(t)
  const cli = join(import.meta.dirname, '..', '..', 'src', 'cli.ts')
  const { stdout } = await promisify(execFile)(process.execPath, [cli, 'status', '--url', fake.url], { env: { ...process.env, SHC_TOKEN: TOKEN } })
  const lines = stdout.trimEnd().split('\n')
  t.equal(lines.length, expectedTable.length)
  // The real clock runs here: compare what does not depend on it.
  t.equal(lines[0], expectedTable[0])
  t.same(lines.slice(2, 9).map(line => line.split(/\s+/).slice(0, 4)), expectedTable.slice(2, 9).map(line => line.split(/\s+/).slice(0, 4)))
  t.notMatch(stdout, '\u001b', 'no colours into a pipe')
  const failed = await promisify(execFile)(process.execPath, [cli, 'status', '--bogus']).catch((e: { code: number, stderr: string }) => e)
  t.equal((failed as { code: number }).code, 2)
})

t.test('a fleet scripted on the real engine: the table line by line, and --json the API\'s own answers', async t => {
  // One clock for the engine, the API and the command: every time the table shows is known.
  let clock = T0
  const { app, sim, engine, close } = await buildTestApp(
    { REMEDIATION_WINDOWS: 'Mon-Fri 08:00-12:06 UTC', BREAKER_MIN_NODES: '3', DRAIN_TIMEOUT: '15m', MAX_CONCURRENT_DRAINS: '2' },
    { now: () => clock })
  t.teardown(close)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const api = async (method: string, path: string, body?: unknown, token = webhookToken) => {
    const response = await fetch(url + path, { method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
    return await response.json() as any
  }
  const alert = async (node: string, alertname = 'NodeDiskIOPSSaturated') =>
    (await api('POST', '/v1/alerts', notification([node], { alertname, startsAt: clock - 10 * m }))).decisions[0].action

  // 12:00 worker-3 (app) is remediated all the way: drained, rebooted, proven, in cooldown.
  t.equal(await alert('worker-3'), 'remediate')
  await until('worker-3 in cooldown', async () => await phaseOf(sim, 'worker-3') === 'cooldown')
  // 12:01 worker-10 (data) drains; a pod's finalizer holds the drain open.
  clock += m
  t.equal(await alert('worker-10', 'NodeKernelDeadlock'), 'remediate')
  await until('worker-10 draining', async () => await phaseOf(sim, 'worker-10') === 'draining')
  // 12:05 pool app paused for an hour; its next alert waits.
  clock += 4 * m
  await api('PUT', '/v1/pause/pool/app', { reason: 'etcd upgrade', by: 'alice', until: new Date(clock + h).toISOString() }, adminToken)
  t.equal(await alert('worker-2'), 'deferred')
  // Someone else cordons worker-8.
  sim.updateNode('worker-8', node => { node.spec = { ...node.spec, unschedulable: true } })
  // 12:07 the window closed at 12:06: worker-7 waits for the next opening.
  clock += 2 * m
  t.equal(await alert('worker-7', 'NodeMemoryPressure'), 'deferred')
  await until('worker-7 held by the window', async () => (await engine.node('worker-7'))?.deferred?.rule === 'window')
  clock += m

  const run = async (args: string[]) => {
    const out: string[] = []
    const err: string[] = []
    const code = await statusCommand(['--url', url, ...args], { out: line => out.push(line), err: line => err.push(line), env: { SHC_TOKEN: webhookToken }, color: false, now: () => clock })
    return { code, out, err }
  }
  const table = await run([])
  t.equal(table.code, 0)
  t.same(table.err, [])
  const expected = [
    'NODES: 5 of 5 shown (--all lists the healthy ones)',
    'POOL  ZONE    NODE       PHASE     SINCE   WHY',
    'app   zone-a  worker-3   cooldown  8m ago  fix proven: Ready and schedulable for VERIFY_DWELL without a re-fire · outcome: remediated · cooldown ends in 22m',
    'app   zone-b  worker-2   pending   3m ago  held by paused (pool=app): paused for pool app by alice at 2026-01-12T12:05:00.000Z until 2026-01-12T13:05:00.000Z: etcd upgrade',
    'data  zone-a  worker-7   pending   1m ago  held by window: outside the maintenance windows (REMEDIATION_WINDOWS Mon-Fri 08:00-12:06 UTC); next opening 2026-01-13T08:00:00.000Z',
    'data  zone-b  worker-8   healthy   -       no remediation yet · out of service by others: cordoned',
    'data  zone-b  worker-10  draining  7m ago  draining until 2026-01-12T12:16:00.000Z at the latest · drain deadline in 8m',
    '',
    'BUDGET: 1 out of service through us · at most 2 drains at once',
    'pool app (5 nodes): 0/1 out of service (ours 0, others 0) · breaker closed',
    '  zone zone-a (3 nodes): 0/1 out of service (ours 0, others 0)',
    '  zone zone-b (2 nodes): 0/1 out of service (ours 0, others 0)',
    'pool data (5 nodes): 2/1 out of service (ours 1, others 1) · causes: cordoned 2 · breaker closed',
    '  zone zone-a (2 nodes): 0/1 out of service (ours 0, others 0)',
    '  zone zone-b (3 nodes): 2/1 out of service (ours 1, others 1) · causes: cordoned 2',
    '',
    'PAUSES:',
    '  pool app paused by alice 3m ago: etcd upgrade · until 2026-01-12T13:05:00.000Z (in 57m)',
    '',
    'WINDOWS: Mon-Fri 08:00-12:06 UTC · closed, next opening 2026-01-13T08:00:00.000Z (in 19h52m)'
  ]
  t.equal(table.out.length, expected.length)
  for (const [i, line] of expected.entries()) t.equal(table.out[i], line, `line ${i + 1}`)

  const json = await run(['--json'])
  t.equal(json.code, 0)
  const [nodes, budget, pause] = await Promise.all([api('GET', '/v1/nodes'), api('GET', '/v1/budget'), api('GET', '/v1/pause')])
  t.same(JSON.parse(json.out.join('\n')), { nodes: nodes.nodes, budget, pauses: pause.pauses, windows: pause.windows }, 'the three answers as the API gives them')
})
