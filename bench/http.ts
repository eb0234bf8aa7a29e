import { spawn, spawnSync } from 'node:child_process'
import { cpus } from 'node:os'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import autocannon from 'autocannon'
import { fixtureUrl, webhookToken } from '../test/support/app.ts'

/** Alerts accepted per second through POST /v1/alerts, against a bare Fastify route, same load. */
async function measure (kind: 'ours' | 'bare', body: string, seconds: number): Promise<{ perSecond: number, errors: number }> {
  // Server and load generator on separate cores (when taskset exists), so the server is what saturates.
  const target = [process.execPath, new URL('./target.ts', import.meta.url).pathname, kind]
  const child = pinned ? spawn('taskset', ['-c', '1', ...target], { stdio: ['ignore', 'pipe', 'inherit'] }) : spawn(target[0]!, target.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] })
  try {
    const [chunk] = await once(child.stdout, 'data') as [Buffer]
    const url = `http://127.0.0.1:${chunk.toString().trim()}/v1/alerts`
    const options = { url, method: 'POST' as const, body, connections: 10, headers: { 'content-type': 'application/json', authorization: `Bearer ${webhookToken}` } }
    await autocannon({ ...options, duration: 2 })
    const result = await autocannon({ ...options, duration: seconds })
    return { perSecond: result.requests.average, errors: result.non2xx + result.errors }
  } finally {
    child.kill('SIGTERM')
    await once(child, 'exit')
  }
}

const pinned = cpus().length >= 2 && spawnSync('taskset', ['-cp', '0', String(process.pid)]).status === 0

export async function benchHttp (seconds = 8) {
  const body = readFileSync(fixtureUrl('firing-single.json'), 'utf8')
  const bare = await measure('bare', body, seconds)
  const ours = await measure('ours', body, seconds)
  return {
    name: 'POST /v1/alerts throughput (captured single-alert notification, 10 connections)',
    bareRequestsPerSecond: Math.round(bare.perSecond),
    oursAlertsPerSecond: Math.round(ours.perSecond),
    errors: bare.errors + ours.errors,
    pinnedToSeparateCores: pinned,
    ratio: ours.perSecond / bare.perSecond,
    target: '>= 0.8',
    pass: ours.perSecond / bare.perSecond >= 0.8 && ours.errors === 0
  }
}
