// The signal exporter: deterministic counters, per-node faults, a valid exposition, the HTTP API.
import { spawnSync } from 'node:child_process'
import t from 'tap'
import { createSignalExporter, dbBuckets, levels } from '../support/signal-exporter.ts'
import { binaries } from '../support/prometheus.ts'

/** Series → value from an exposition. */
function samples (text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    out.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return out
}

function fakeClock () {
  let now = 1_000_000
  return { now: () => now, advance: (ms: number) => { now += ms } }
}

const disk = 'node_disk_io_time_seconds_total{device="nvme0n1"}'
const rxErrs = 'node_network_receive_errs_total{device="eth0"}'
const rxPackets = 'node_network_receive_packets_total{device="eth0"}'

t.test('counters follow the clock: exact rates, faults from the instant they are set', async t => {
  const clock = fakeClock()
  const e = createSignalExporter({ nodes: ['worker-1', 'worker-2'], now: clock.now })
  const at = (node: string) => samples(e.render(node, 'node'))
  t.equal(at('worker-1').get(disk), 0, 'everything starts at 0')
  clock.advance(10_000)
  t.equal(at('worker-1').get(disk), 10 * levels.diskBusy.ok)
  t.same(at('worker-1'), at('worker-1'), 'the same instant gives the same numbers')

  e.setFault('worker-1', 'disk')
  const before = at('worker-1').get(disk)!
  clock.advance(10_000)
  t.equal(at('worker-1').get(disk)! - before, 10 * levels.diskBusy.fault, 'faulty rate after the change')
  t.equal(at('worker-2').get(disk), 20 * levels.diskBusy.ok, 'other nodes unaffected')
  t.same(e.faults(), { 'worker-1': ['disk'] })

  e.clear()
  const cleared = at('worker-1').get(disk)!
  t.equal(cleared, before + 10 * levels.diskBusy.fault, 'no jump when the fault is cleared')
  clock.advance(1000)
  t.ok(Math.abs(at('worker-1').get(disk)! - cleared - levels.diskBusy.ok) < 1e-9, 'healthy rate again')
  t.same(e.faults(), {})

  e.setFault('worker-2', 'nic')
  clock.advance(1000)
  const nic = at('worker-2')
  const errs = nic.get(rxErrs)!
  const packets = nic.get(rxPackets)!
  t.equal(errs, levels.nicPackets.rx * levels.nicErrorRatio.fault, '5% of the second\'s packets in error')
  t.ok(packets > 0)
  e.clearFault('worker-2', 'nic')
  t.throws(() => e.setFault('worker-9', 'disk'), /unknown node worker-9/)
})

t.test('the DB histogram: cumulative buckets, the fault moves every observation past 1s', async t => {
  const clock = fakeClock()
  const e = createSignalExporter({ nodes: ['worker-1'], now: clock.now })
  clock.advance(1000)
  const bucket = (s: Map<string, number>, le: string) => s.get(`db_client_connection_latency_seconds_bucket{le="${le}"}`)!
  const healthy = samples(e.render('worker-1', 'app'))
  const les = [...dbBuckets.map(String), '+Inf']
  for (let i = 1; i < les.length; i++) t.ok(bucket(healthy, les[i]!) >= bucket(healthy, les[i - 1]!), `le=${les[i]} >= le=${les[i - 1]}`)
  t.equal(bucket(healthy, '+Inf'), healthy.get('db_client_connection_latency_seconds_count'))
  t.equal(bucket(healthy, '0.05'), levels.dbConnections, 'healthy: all within 50ms')

  e.setFault('worker-1', 'db')
  clock.advance(1000)
  const faulty = samples(e.render('worker-1', 'app'))
  t.equal(bucket(faulty, '1') - bucket(healthy, '1'), 0, 'no observation under 1s during the fault')
  t.equal(bucket(faulty, '2.5') - bucket(healthy, '2.5'), levels.dbConnections)
  t.notOk(e.render('worker-1', 'app').includes('node_disk'), 'the app job has only the histogram')
  t.notOk(e.render('worker-1', 'node').includes('db_client'), 'the node job has only node_exporter series')
  t.notOk(e.render('worker-1', 'node').includes('node="'), 'no node label: the scrape config adds it')
})

const promtool = spawnSync(binaries.promtool, ['--version']).error === undefined
t.test('promtool check metrics accepts both expositions', { skip: promtool ? false : 'promtool not on PATH' }, async t => {
  const e = createSignalExporter({ nodes: ['worker-1'] })
  e.setFault('worker-1', 'nic')
  for (const job of ['node', 'app'] as const) {
    const r = spawnSync(binaries.promtool, ['check', 'metrics'], { input: e.render('worker-1', job), encoding: 'utf8' })
    t.equal(r.status, 0, `${job}: ${r.stdout}${r.stderr}`)
  }
})

t.test('HTTP: metrics per node and job, faults set and cleared, loopback only', async t => {
  const e = createSignalExporter({ nodes: ['worker-1', 'worker-3'] })
  const { url } = await e.listen()
  t.teardown(() => e.close())
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)
  const call = async (method: string, p: string) => {
    const res = await fetch(`${url}${p}`, { method })
    return { status: res.status, type: res.headers.get('content-type'), body: await res.text() }
  }
  const metrics = await call('GET', '/nodes/worker-3/metrics/node')
  t.equal(metrics.status, 200)
  t.match(metrics.type, /^text\/plain; version=0\.0\.4/)
  t.match(metrics.body, /node_disk_io_time_seconds_total\{device="nvme0n1"\}/)
  t.equal((await call('GET', '/nodes/worker-9/metrics/node')).status, 404)

  t.same(JSON.parse((await call('POST', '/faults/worker-3/disk')).body), { 'worker-3': ['disk'] })
  t.same(JSON.parse((await call('POST', '/faults/worker-3/db')).body), { 'worker-3': ['db', 'disk'] })
  t.same(JSON.parse((await call('GET', '/faults')).body), { 'worker-3': ['db', 'disk'] })
  t.same(JSON.parse((await call('DELETE', '/faults/worker-3/db')).body), { 'worker-3': ['disk'] })
  t.same(JSON.parse((await call('DELETE', '/faults')).body), {})
  t.equal((await call('POST', '/faults/worker-3/cpu')).status, 400)
  t.equal((await call('POST', '/faults/worker-9/disk')).status, 404)
  t.equal((await call('GET', '/nope')).status, 404)
  t.match((await call('GET', '/')).body, /POST\|DELETE \/faults/)
})
