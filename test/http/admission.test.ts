import { readFileSync } from 'node:fs'
import t from 'tap'
import { buildTestApp, fixtureUrl } from '../support/app.ts'
import { burst, largeNotification, send } from './burst.ts'

t.test('a burst of large notifications: a few at a time, 503 + Retry-After for the rest, /healthz stays quick', async t => {
  const bodyLimit = 4 * 1024 * 1024
  const { app, close } = await buildTestApp({}, { bodyLimit })
  t.teardown(close)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  const body = largeNotification(3 * 1024 * 1024)
  const { answers, probes } = await burst(port, Array.from({ length: 16 }, () => body), { probeEveryMs: 25 })

  const accepted = answers.filter(r => r.status === 202).length
  const refused = answers.filter(r => r.status === 503)
  t.equal(accepted + refused.length, 16, `only 202 or 503: ${answers.map(r => r.status).join(' ')}`)
  t.ok(accepted >= 1, `some were admitted (${accepted})`)
  t.ok(refused.length >= 8, `most waited for a retry (${refused.length}): the default budget, 8 MiB, holds two of these`)
  t.ok(refused.every(r => r.headers['retry-after'] === '1'), 'with Retry-After')
  t.ok(probes.length >= 3, `probed during the burst (${probes.length})`)
  const slowest = Math.max(...probes.map(ms => ms ?? Infinity))
  t.ok(slowest < 3000, `/healthz answered within the probe's 3 s throughout (slowest ${slowest.toFixed(0)} ms)`)

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
