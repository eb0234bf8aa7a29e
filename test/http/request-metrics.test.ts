import { readFileSync } from 'node:fs'
import t from 'tap'
import { buildTestApp, fixtureUrl, webhookToken } from '../support/app.ts'

const firing = readFileSync(fixtureUrl('firing-single.json'), 'utf8')
const bearer = { authorization: `Bearer ${webhookToken}` }

t.test('requests are counted by route pattern, method and status, and timed by route', async t => {
  const { app, close } = await buildTestApp()
  t.teardown(close)
  const before = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(before, /shc_http_request_duration_seconds_count\{route="\/v1\/alerts"\} 0/, 'every route has a zero series from the start')

  await app.inject({ method: 'POST', url: '/v1/alerts', headers: { ...bearer, 'content-type': 'application/json' }, payload: firing })
  await app.inject({ method: 'POST', url: '/v1/alerts', headers: { 'content-type': 'application/json' }, payload: firing })
  for (const name of ['worker-1', 'worker-2']) await app.inject({ method: 'GET', url: `/v1/nodes/${name}`, headers: bearer })
  await app.inject({ method: 'GET', url: '/v1/nodes/worker-99', headers: bearer })
  await app.inject({ method: 'GET', url: '/healthz' })
  await app.inject({ method: 'GET', url: '/no/such/route' })

  const { body } = await app.inject({ method: 'GET', url: '/metrics' })
  const series = (name: string) => Object.fromEntries(body.split('\n').filter(line => line.startsWith(name)).map(line => {
    const at = line.lastIndexOf(' ')
    return [line.slice(name.length, at), Number(line.slice(at + 1))]
  }))
  t.same(series('shc_http_requests_total'), {
    '{route="/metrics",method="GET",status="200"}': 1,
    '{route="/v1/alerts",method="POST",status="202"}': 1,
    '{route="/v1/alerts",method="POST",status="401"}': 1,
    '{route="/v1/nodes/:name",method="GET",status="200"}': 2,
    '{route="/v1/nodes/:name",method="GET",status="404"}': 1,
    '{route="/healthz",method="GET",status="200"}': 1
  }, 'the pattern, never the URL; an unmatched URL is not counted')
  const counts = series('shc_http_request_duration_seconds_count')
  t.equal(counts['{route="/v1/alerts"}'], 2)
  t.equal(counts['{route="/v1/nodes/:name"}'], 3)
  t.equal(counts['{route="/readyz"}'], 0)
  const sum = series('shc_http_request_duration_seconds_sum')['{route="/v1/alerts"}']!
  t.ok(sum > 0 && sum < 5, `durations are in seconds (${sum})`)
})
