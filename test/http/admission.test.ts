import { request } from 'node:http'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { buildTestApp, fixtureUrl, webhookToken } from '../support/app.ts'

const captured = JSON.parse(readFileSync(fixtureUrl('firing-single.json'), 'utf8'))

/** A notification of about `bytes` bytes: alerts shaped like the captured one, for nodes that do not exist. */
function largeNotification (bytes: number): Buffer {
  const [template] = captured.alerts
  const one = JSON.stringify(template).length + 1
  const alerts = Array.from({ length: Math.ceil(bytes / one) }, (_, i) => ({ ...template, labels: { ...template.labels, node: `ghost-${i}` }, fingerprint: i.toString(16).padStart(16, '0') }))
  return Buffer.from(JSON.stringify({ ...captured, alerts }))
}

function send (port: number, method: string, path: string, body?: Buffer): Promise<{ status: number, headers: Record<string, string | string[] | undefined>, ms: number }> {
  const start = performance.now()
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent: false, headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': body.length, authorization: `Bearer ${webhookToken}` } }, res => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, ms: performance.now() - start }))
    })
    // The server may answer 503 and stop reading before the whole body is sent.
    req.on('error', err => (err as NodeJS.ErrnoException).code === 'EPIPE' || (err as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(err))
    req.end(body)
  })
}

t.test('a burst of large notifications: a few at a time, 503 + Retry-After for the rest, /healthz stays quick', async t => {
  const bodyLimit = 4 * 1024 * 1024
  const { app, close } = await buildTestApp({}, { bodyLimit })
  t.teardown(close)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  const body = largeNotification(3 * 1024 * 1024)

  let bursting = true
  const probes: number[] = []
  const probing = (async () => {
    while (bursting) {
      probes.push((await send(port, 'GET', '/healthz')).ms)
      await new Promise(resolve => setTimeout(resolve, 25))
    }
  })()
  const burst = await Promise.all(Array.from({ length: 16 }, () => send(port, 'POST', '/v1/alerts', body)))
  bursting = false
  await probing

  const accepted = burst.filter(r => r.status === 202).length
  const refused = burst.filter(r => r.status === 503)
  t.equal(accepted + refused.length, 16, `only 202 or 503: ${burst.map(r => r.status).join(' ')}`)
  t.ok(accepted >= 1, `some were admitted (${accepted})`)
  t.ok(refused.length >= 8, `most waited for a retry (${refused.length}): the default budget, 8 MiB, holds two of these`)
  t.ok(refused.every(r => r.headers['retry-after'] === '1'), 'with Retry-After')
  t.ok(probes.length >= 3, `probed during the burst (${probes.length})`)
  t.ok(Math.max(...probes) < 1000, `/healthz answered within 1 s throughout (slowest ${Math.max(...probes).toFixed(0)} ms; the probe allows 3 s)`)

  // What Alertmanager does next: retry. Once the burst is over every one is admitted.
  for (const _ of refused) t.equal((await send(port, 'POST', '/v1/alerts', body)).status, 202, 'admitted on retry')
})

t.test('small notifications are never held back, and a body over the limit is still a 413', async t => {
  const { app, close } = await buildTestApp({}, { bodyLimit: 1024 * 1024 })
  t.teardown(close)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  const small = readFileSync(fixtureUrl('firing-single.json'))
  const statuses = (await Promise.all(Array.from({ length: 50 }, () => send(port, 'POST', '/v1/alerts', small)))).map(r => r.status)
  t.same(new Set(statuses), new Set([202]))
  t.equal((await send(port, 'POST', '/v1/alerts', largeNotification(1.5 * 1024 * 1024))).status, 413)
})
