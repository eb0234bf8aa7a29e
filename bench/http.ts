import { spawn, spawnSync } from 'node:child_process'
import { cpus } from 'node:os'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import autocannon from 'autocannon'
import { fixtureUrl, webhookToken } from '../test/support/app.ts'
import { burst, largeNotification, send } from '../test/http/burst.ts'
import { median } from './median.ts'

type Usage = { cpu: NodeJS.CpuUsage, maxRssBytes: number }

const pinned = cpus().length >= 2 && spawnSync('taskset', ['-cp', '0', String(process.pid)]).status === 0

/** A target server (bench/target.ts) in its own process, on core 1 when taskset works; this process stays on core 0. */
async function startTarget (kind: 'ours' | 'bare') {
  const target = [process.execPath, new URL('./target.ts', import.meta.url).pathname, kind]
  const [command, ...args] = pinned ? ['taskset', '-c', '1', ...target] : target
  const child = spawn(command!, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const [{ port }] = await once(child, 'message') as [{ port: number }]
  return {
    port,
    async usage (): Promise<Usage> {
      child.send('usage')
      const [usage] = await once(child, 'message') as [Usage]
      return usage
    },
    async stop () {
      child.kill('SIGTERM')
      await once(child, 'exit')
    }
  }
}

type Measured = { cpuMicrosPerRequest: number, perSecond: number, errors: number }

/**
 * Both servers under the captured notification at the same time, on the same core, each loaded
 * by its own 10 connections: the server's own CPU time per request (user + system over the
 * measured window, read by the server itself) and its throughput. Measured side by side, both see
 * the same machine at the same moment, so whatever else runs on a shared machine weighs on both.
 */
async function measureTogether (body: string, seconds: number): Promise<Record<'bare' | 'ours', Measured>> {
  const servers = { bare: await startTarget('bare'), ours: await startTarget('ours') }
  try {
    const load = (kind: 'bare' | 'ours', duration: number) => autocannon({
      url: `http://127.0.0.1:${servers[kind].port}/v1/alerts`,
      method: 'POST',
      body,
      connections: 10,
      duration,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${webhookToken}` }
    })
    await Promise.all([load('bare', 2), load('ours', 2)])
    const before = await Promise.all([servers.bare.usage(), servers.ours.usage()])
    const results = await Promise.all([load('bare', seconds), load('ours', seconds)])
    const after = await Promise.all([servers.bare.usage(), servers.ours.usage()])
    const measured = (i: 0 | 1): Measured => ({
      cpuMicrosPerRequest: (after[i].cpu.user + after[i].cpu.system - before[i].cpu.user - before[i].cpu.system) / results[i].requests.total,
      perSecond: results[i].requests.average,
      errors: results[i].non2xx + results[i].errors
    })
    return { bare: measured(0), ours: measured(1) }
  } finally {
    await Promise.all([servers.bare.stop(), servers.ours.stop()])
  }
}

/**
 * The verdict is the median over the rounds of bare µs ÷ our µs of server CPU per request;
 * throughput (requests per second while the two share the core) is reported beside it.
 */
export async function benchHttp (rounds = 5, seconds = 4) {
  const body = readFileSync(fixtureUrl('firing-single.json'), 'utf8')
  const results: Array<{ bareMicros: number, oursMicros: number, ratio: number, bareRequestsPerSecond: number, oursRequestsPerSecond: number, throughputRatio: number }> = []
  let errors = 0
  for (let round = 0; round < rounds; round++) {
    const { bare, ours } = await measureTogether(body, seconds)
    errors += bare.errors + ours.errors
    results.push({
      bareMicros: Number(bare.cpuMicrosPerRequest.toFixed(2)),
      oursMicros: Number(ours.cpuMicrosPerRequest.toFixed(2)),
      ratio: Number((bare.cpuMicrosPerRequest / ours.cpuMicrosPerRequest).toFixed(3)),
      bareRequestsPerSecond: Math.round(bare.perSecond),
      oursRequestsPerSecond: Math.round(ours.perSecond),
      throughputRatio: Number((ours.perSecond / bare.perSecond).toFixed(3))
    })
  }
  const ratio = median(results.map(r => r.ratio))
  return {
    name: 'POST /v1/alerts, server CPU per request (captured single-alert notification, 10 connections each) vs a bare Fastify route, measured side by side',
    rounds: results,
    bareMicrosPerRequest: median(results.map(r => r.bareMicros)),
    oursMicrosPerRequest: median(results.map(r => r.oursMicros)),
    ratioSpread: [Math.min(...results.map(r => r.ratio)), Math.max(...results.map(r => r.ratio))],
    throughputRatio: median(results.map(r => r.throughputRatio)),
    errors,
    pinned: pinned ? 'both servers on core 1, load generator on core 0' : false,
    ratio,
    target: '>= 0.8 (bare µs ÷ our µs, median of the rounds)',
    pass: ratio >= 0.8 && errors === 0
  }
}

/** The Deployment's memory limit and liveness probe timeout (deploy/base/deployment.yaml). */
const memoryLimitBytes = 512 * 1024 * 1024
const probeTimeoutMs = 3000

/**
 * 48 notifications of 5 MB (the default BODY_LIMIT is 5 MiB) sent at once, then the refused ones
 * retried every second as Alertmanager would, while /healthz is probed every 100 ms from another
 * process: the server's peak RSS against the Deployment's limit, and the slowest probe (a failed
 * one counts as endless) against the probe's timeout.
 */
export async function benchBurst (count = 48, bytes = 5_000_000) {
  const server = await startTarget('ours')
  try {
    const body = largeNotification(bytes)
    const idle = await server.usage()
    const start = performance.now()
    let pending = Array.from({ length: count }, () => body)
    const statuses: Record<string, number> = {}
    const probes: Array<number | null> = []
    let attempts = 0
    while (pending.length > 0) {
      if (attempts++ > 0) await new Promise(resolve => setTimeout(resolve, 1000))
      // The prober shares the server's core, as the kubelet shares the node with the pod.
      const round = await burst(server.port, pending, { probeEveryMs: 100, probePrefix: pinned ? ['taskset', '-c', '1'] : [] })
      probes.push(...round.probes)
      for (const { status } of round.answers) statuses[status] = (statuses[status] ?? 0) + 1
      // What Alertmanager retries: a 5xx or no answer.
      const retried = new Set([0, 503])
      pending = pending.filter((_, i) => retried.has(round.answers[i]!.status))
      if (round.answers.some(r => r.status !== 202 && !retried.has(r.status))) break
    }
    probes.push((await send(server.port, 'GET', '/healthz')).ms)
    const peak = (await server.usage()).maxRssBytes
    const slowestProbeMs = Math.max(...probes.map(ms => ms ?? Infinity))
    const allAccepted = pending.length === 0 && Object.keys(statuses).every(s => ['0', '202', '503'].includes(s))
    const mib = (n: number) => Number((n / 1024 / 1024).toFixed(1))
    return {
      name: `${count} concurrent ${bytes / 1e6} MB notifications, refused ones retried every 1 s`,
      bodyBytes: body.length,
      /** By status code; 0 is a connection closed before an answer (retried like a 5xx). */
      statuses,
      attempts,
      allAcceptedAfterSeconds: Number(((performance.now() - start) / 1000).toFixed(1)),
      peakRssMiBBeforeBurst: mib(idle.maxRssBytes),
      peakRssMiB: mib(peak),
      slowestHealthzMs: Math.round(slowestProbeMs),
      healthzProbes: probes.length,
      ratio: peak / memoryLimitBytes,
      target: `peak RSS < ${mib(memoryLimitBytes)} MiB (ratio < 1), /healthz < ${probeTimeoutMs} ms, every notification accepted after retries`,
      pass: allAccepted && peak < memoryLimitBytes && slowestProbeMs < probeTimeoutMs
    }
  } finally {
    await server.stop()
  }
}
