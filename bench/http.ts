import { spawn, spawnSync } from 'node:child_process'
import { cpus } from 'node:os'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import autocannon from 'autocannon'
import { fixtureUrl, webhookToken } from '../test/support/app.ts'
import { median } from './median.ts'

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

/**
 * Rounds alternate the two servers (bare first in even rounds, ours first in odd ones) so that a
 * slow spell on the machine lands on both; the verdict is the median of the per-round ratios.
 */
export async function benchHttp (rounds = 5, seconds = 4) {
  const body = readFileSync(fixtureUrl('firing-single.json'), 'utf8')
  const results: Array<{ bare: number, ours: number, ratio: number }> = []
  let errors = 0
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? ['bare', 'ours'] as const : ['ours', 'bare'] as const
    const measured: Record<string, number> = {}
    for (const kind of order) {
      const result = await measure(kind, body, seconds)
      measured[kind] = result.perSecond
      errors += result.errors
    }
    results.push({ bare: Math.round(measured.bare!), ours: Math.round(measured.ours!), ratio: Number((measured.ours! / measured.bare!).toFixed(3)) })
  }
  const ratio = median(results.map(r => r.ratio))
  return {
    name: 'POST /v1/alerts throughput (captured single-alert notification, 10 connections)',
    rounds: results,
    bareRequestsPerSecond: median(results.map(r => r.bare)),
    oursAlertsPerSecond: median(results.map(r => r.ours)),
    errors,
    pinnedToSeparateCores: pinned,
    ratio,
    target: '>= 0.8 (median of the rounds)',
    pass: ratio >= 0.8 && errors === 0
  }
}
