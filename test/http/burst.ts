import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { Agent, request } from 'node:http'
import { readFileSync } from 'node:fs'
import { fixtureUrl, webhookToken } from '../support/app.ts'

/** Shared by the admission test and the burst benchmark: large notifications sent at once over real sockets. */
const captured = JSON.parse(readFileSync(fixtureUrl('firing-single.json'), 'utf8'))

/** A notification of about `bytes` bytes: alerts shaped like the captured one, for nodes that do not exist. */
export function largeNotification (bytes: number): Buffer {
  const [template] = captured.alerts
  const one = JSON.stringify(template).length + 1
  const alerts = Array.from({ length: Math.floor(bytes / one) }, (_, i) => ({ ...template, labels: { ...template.labels, node: `ghost-${i}` }, fingerprint: i.toString(16).padStart(16, '0') }))
  return Buffer.from(JSON.stringify({ ...captured, alerts }))
}

/**
 * One request on its own keep-alive connection, as Alertmanager's Go client keeps them (a server
 * answering early then reads the rest of the body and discards it, and the answer arrives): a
 * body goes to the webhook with its token. Status (0: no answer), headers, wall time.
 */
export function send (port: number, method: string, path: string, body?: Buffer): Promise<{ status: number, headers: Record<string, string | string[] | undefined>, ms: number }> {
  const start = performance.now()
  const agent = new Agent({ keepAlive: true })
  return new Promise<{ status: number, headers: Record<string, string | string[] | undefined>, ms: number }>((resolve, reject) => {
    const headers = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': body.length, authorization: `Bearer ${webhookToken}` }
    let answered = false
    const req = request({ host: '127.0.0.1', port, method, path, agent, headers }, res => {
      answered = true
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, ms: performance.now() - start }))
    })
    req.on('error', err => {
      if (!answered) resolve({ status: 0, headers: {}, ms: performance.now() - start })
      else if (!['EPIPE', 'ECONNRESET'].includes((err as NodeJS.ErrnoException).code ?? '')) reject(err)
    })
    req.end(body)
  }).finally(() => agent.destroy())
}

const prober = `
  const { get } = require('node:http')
  const [port, everyMs] = process.argv.slice(1).map(Number)
  const latencies = []
  let running = true
  process.on('message', () => { running = false })
  const once = () => new Promise(resolve => {
    const start = performance.now()
    get({ host: '127.0.0.1', port, path: '/healthz' }, res => { res.resume(); res.on('end', () => resolve(performance.now() - start)) })
      .on('error', () => resolve(null))
  })
  ;(async () => {
    process.send('probing')
    while (running) {
      latencies.push(await once())
      await new Promise(resolve => setTimeout(resolve, everyMs))
    }
    process.send(latencies, () => process.exit(0))
  })()
`

/**
 * GET /healthz every `everyMs` from a process of its own, as the kubelet probes from outside: the
 * latencies are the server's, not those of the busy process sending the bodies. `prefix` runs it
 * under a command (e.g. taskset, to share the server's core as the kubelet shares its node).
 */
async function probe (port: number, everyMs: number, prefix: readonly string[]) {
  const [command, ...args] = [...prefix, process.execPath, '-e', prober, String(port), String(everyMs)]
  const child = spawn(command!, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  await once(child, 'message')
  return {
    async stop (): Promise<Array<number | null>> {
      child.send('stop')
      const [latencies] = await once(child, 'message') as [Array<number | null>]
      await once(child, 'exit')
      return latencies
    }
  }
}

/**
 * Sends every body at once while /healthz is probed every `probeEveryMs`: each answer, and each
 * probe's latency (null: no answer).
 */
export async function burst (port: number, bodies: Buffer[], { probeEveryMs, probePrefix = [] }: { probeEveryMs: number, probePrefix?: readonly string[] }) {
  const probing = await probe(port, probeEveryMs, probePrefix)
  const answers = await Promise.all(bodies.map(body => send(port, 'POST', '/v1/alerts', body)))
  return { answers, probes: await probing.stop() }
}
