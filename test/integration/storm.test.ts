import t from 'tap'
import { binariesForTest, waitFor } from '../support/controlplane.ts'
import { notification, startScenario } from '../support/scenario.ts'

const bins = await binariesForTest()

t.test('an alert storm: the breaker opens on the pool; elsewhere one node at a time, each held until an operator takes it back', { skip: bins.skip ?? false, timeout: 240_000 }, async t => {
  const s = await startScenario(bins.binDir!)
  t.teardown(() => s.stop())
  const app = await s.nodes('app', 4)
  const data = await s.nodes('data', 10)
  await s.deploy('web', 'data', 10)
  let maxCordoned = 0
  const watch = setInterval(() => { void s.cordoned([...app, ...data]).then(c => { maxCordoned = Math.max(maxCordoned, c.length) }).catch(() => {}) }, 100)
  t.teardown(() => clearInterval(watch))
  const controller = await s.controller('replica-a', { MAX_CONCURRENT_DRAINS: '1', BREAKER_THRESHOLD: '0.5', BREAKER_MIN_NODES: '2', POOL_MAX_UNAVAILABLE: '2' })

  const storm = await controller.post('/v1/alerts', notification(app))
  t.ok(storm.body.decisions.every((d: { action: string, rule?: string }) => d.action === 'deferred' && d.rule === 'circuit-breaker'), 'every node of the stormy pool is held by the breaker')
  const burst = data.slice(0, 4)
  const paced = await controller.post('/v1/alerts', notification(burst))
  t.same(paced.body.decisions.map((d: { action: string }) => d.action), ['remediate', 'deferred', 'deferred', 'deferred'], '40% of data is below the threshold: one starts, the rest wait their turn')

  // PROVIDER=none fixes nothing: each drained node keeps its slot until an operator takes it back.
  for (let done = 0; done < burst.length; done++) {
    const held = await waitFor('a data node drained and held', async () => {
      for (const node of burst) if (await s.phase(node) === 'failed') return node
      return undefined
    }, { timeoutMs: 60_000 })
    t.equal((await s.state(held)).outcome, 'not-performed')
    await s.cp.kubectl(['uncordon', held])
    await waitFor(`${held} released`, async () => await s.phase(held) === 'cancelled', { timeoutMs: 20_000 })
  }
  t.equal(maxCordoned, 1, 'never more than one node out of service at a time')
  t.same(await Promise.all(app.map(n => s.phase(n))), app.map(() => 'pending'), 'the stormy pool was never touched')
  t.match(await fetch(`${controller.url}/metrics`).then(r => r.text()), /shc_circuit_breaker_open\{scope="pool=app"\} 1/)
  t.match((await s.state(app[0]!)).deferred.reason, /^circuit breaker open for pool=app/)
})
