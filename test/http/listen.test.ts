import { request } from 'node:http'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { buildTestApp, fixtureUrl } from '../support/app.ts'
import { until } from '../support/sim.ts'

/** The captured request, byte for byte, with Alertmanager 0.25's own headers, over a real socket. */
function replay (port: number, body: Buffer, headers: Record<string, string>): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/alerts', headers }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', chunk => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode!, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

function capturedHeaders (): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const line of readFileSync(fixtureUrl('request-headers.txt'), 'utf8').split('\n')) {
    const at = line.indexOf(':')
    if (at > 0 && !/^(host|content-length)$/i.test(line.slice(0, at))) headers[line.slice(0, at)] = line.slice(at + 1).trim()
  }
  return headers
}

t.test('the real captured firing and resolved notifications, on a listening port', async t => {
  const { app, sim, engine, close } = await buildTestApp({ DRAIN_TIMEOUT: '30s' })
  t.teardown(close)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  const headers = capturedHeaders()
  t.equal(headers['User-Agent'], 'Alertmanager/0.25.0')

  const firing = await replay(port, readFileSync(fixtureUrl('firing-single.json')), headers)
  t.equal(firing.status, 202)
  t.match(JSON.parse(firing.body).decisions, [{ node: 'worker-3', action: 'remediate' }])
  await until('worker-3 cooling down', async () => (await sim.getNode('worker-3'))!.metadata!.annotations!['self-healing-controller.io/phase'] === 'cooldown')

  // The first repeat after the fix is news (Alertmanager still sends it): recorded, nothing started.
  const again = await replay(port, readFileSync(fixtureUrl('firing-single.json')), headers)
  t.match(JSON.parse(again.body).decisions, [{ action: 'ignored', reason: /node is in cooldown; alert recorded/ }], 'a repeat after the fix is recorded')
  const twice = await replay(port, readFileSync(fixtureUrl('firing-single.json')), headers)
  t.match(JSON.parse(twice.body).decisions, [{ action: 'ignored', reason: /duplicate/ }], 'a repeat notification is idempotent')

  const resolved = await replay(port, readFileSync(fixtureUrl('resolved-single.json')), headers)
  t.equal(resolved.status, 202)
  t.match(JSON.parse(resolved.body).decisions, [{ node: 'worker-3', action: 'ignored', reason: /resolved; recorded \(node is cooldown\)/ }])

  const wrong = await replay(port, readFileSync(fixtureUrl('firing-single.json')), { ...headers, Authorization: 'Bearer nope' })
  t.equal(wrong.status, 401)
})
