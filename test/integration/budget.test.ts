import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { startCuttableProxy } from '../kube/cuttable-proxy.ts'
import { binariesForTest, waitFor } from '../support/controlplane.ts'
import { notification, startScenario, type Scenario } from '../support/scenario.ts'

/**
 * The disruption budget on a real control plane, with the deploy/ ServiceAccount: what a storm,
 * a follower, a slow API server, other people's cordons and a lost lease do to the promise.
 */
const bins = await binariesForTest()

/** Largest number of nodes of `names` seen cordoned at once, sampled every 100 ms until stopped. */
function watchCordons (s: Scenario, names: readonly string[]) {
  let max = 0
  const timer = setInterval(() => { void s.cordoned(names).then(c => { max = Math.max(max, c.length) }).catch(() => {}) }, 100)
  return { stop: () => { clearInterval(timer); return max } }
}

const cordonPatches = (s: Scenario, names: readonly string[], since = 0) => s.cp.readAuditEvents().filter(e =>
  e.user.username.endsWith(':self-healing-controller') && e.verb === 'patch' && names.some(n => e.requestURI.startsWith(`/api/v1/nodes/${n}`)) &&
  Date.parse(e.requestReceivedTimestamp ?? '') >= since)

t.test('the budget on a real cluster', { skip: bins.skip ?? false, timeout: 600_000 }, async t => {
  const s = await startScenario(bins.binDir!)
  t.teardown(() => s.stop())

  await t.test('PROVIDER=none, two replicas, five alert/resolve cycles in one pool: never more than one node held by us', async t => {
    const pool = await s.nodes('seq', 5)
    const env = { MAX_CONCURRENT_DRAINS: '1', BREAKER_MIN_NODES: '10' }
    const [a, b] = [await s.controller('seq-a', env), await s.controller('seq-b', env)]
    const holder = await waitFor('a leader', () => s.leaseHolder(), { timeoutMs: 20_000 })
    const follower = [a, b].find(r => r.name !== holder)!
    const watch = watchCordons(s, pool)
    for (const node of pool) {
      await follower.post('/v1/alerts', notification([node]))
      await new Promise(resolve => setTimeout(resolve, 1500))
      await follower.post('/v1/alerts', notification([node], { status: 'resolved' }))
    }
    await waitFor('the first node drained and held', async () => await s.phase(pool[0]!) === 'failed', { timeoutMs: 60_000 })
    await new Promise(resolve => setTimeout(resolve, 2000))
    t.equal(watch.stop(), 1, 'one node out of service because of us, at most, all along')
    t.same(await s.cordoned(pool), [pool[0]], 'the drained node keeps its slot; the pool was not emptied one alert at a time')
    t.equal((await s.state(pool[0]!)).outcome, 'not-performed')
    t.match(await fetch(`${a.url}/metrics`).then(r => r.text()), /shc_drains_in_flight 1/)
    // An operator takes it back: the slot is free for the scenarios that follow.
    await s.cp.kubectl(['uncordon', pool[0]!])
    await waitFor('released', async () => await s.phase(pool[0]!) === 'cancelled', { timeoutMs: 20_000 })
    await a.kill('SIGTERM')
    await b.kill('SIGTERM')
  })

  await t.test('a storm of per-node notifications to a follower on a slow API: no drain', async t => {
    const pool = await s.nodes('storm', 6)
    const env = { MAX_CONCURRENT_DRAINS: '2', BREAKER_THRESHOLD: '0.5', BREAKER_MIN_NODES: '2', STORM_SETTLE: '3s', POOL_MAX_UNAVAILABLE: '3' }
    const leader = await s.controller('storm-leader', env)
    await waitFor('storm-leader to lead', async () => await s.leaseHolder() === 'storm-leader', { timeoutMs: 20_000 })
    const proxy = await startCuttableProxy(new URL(s.cp.server), { delayMs: 150 })
    t.teardown(() => proxy.close())
    const follower = await s.controller('storm-follower', { ...env, KUBECONFIG: s.kubeconfigVia(proxy.url, 'storm-follower') })
    const started = Date.now()
    const answers = []
    for (const node of pool) {
      answers.push((await follower.post('/v1/alerts', notification([node]))).body.decisions[0])
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    t.ok(answers.every(d => d.action === 'deferred'), `the follower answers defer for every node (${answers.map(d => d.rule)})`)
    await new Promise(resolve => setTimeout(resolve, 8000))
    t.same(cordonPatches(s, pool, started).filter(e => e.requestURI.includes(pool[0]!) || true).length > 0, true, 'the storm was recorded on the nodes')
    t.same(await s.cordoned(pool), [], 'no node drained')
    t.match((await s.state(pool[0]!)).deferred, { rule: 'circuit-breaker', scope: 'pool=storm' })
    const budget = await leader.get('/v1/budget')
    t.match(budget.body.pools.find((p: { pool: string }) => p.pool === 'storm'), { size: 6, breaker: { open: true } })
    await follower.kill('SIGTERM')
    await leader.kill('SIGTERM')
  })

  await t.test('an operator-cordoned node and an alert in the same pool, POOL_MAX_UNAVAILABLE=1: no drain, the reason visible', async t => {
    const pool = await s.nodes('ops', 4)
    await s.cp.kubectl(['cordon', pool[0]!])
    const controller = await s.controller('ops-a', { POOL_MAX_UNAVAILABLE: '1' })
    const answer = await controller.post('/v1/alerts', notification([pool[1]!]))
    t.match(answer.body.decisions, [{ action: 'deferred', rule: 'budget', reason: /pool ops has no disruption budget left/, detail: { size: 4, outOfService: 1, ours: 0, others: 1, budget: 1 } }])
    const onCordoned = await controller.post('/v1/alerts', notification([pool[0]!]))
    t.match(onCordoned.body.decisions, [{ action: 'deferred', rule: 'disrupted-elsewhere', reason: /already out of service: cordoned/ }])
    await new Promise(resolve => setTimeout(resolve, 3000))
    t.same(await s.cordoned(pool), [pool[0]], 'nothing more taken out of service')
    const node = await controller.get(`/v1/nodes/${pool[1]}`)
    t.match(node.body, { phase: 'pending', deferred: { rule: 'budget', detail: { others: 1 } } })
    const budget = await controller.get('/v1/budget')
    t.match(budget.body.pools.find((p: { pool: string }) => p.pool === 'ops'), { size: 4, budget: 1, outOfService: { ours: 0, others: 1, causes: { cordoned: 1 } } })
    const described = await s.cp.kubectl(['describe', 'node', pool[1]!])
    t.match(described.stdout, /RemediationDeferred.*no disruption budget left/s, 'kubectl describe node says why')
    await controller.kill('SIGTERM')
  })

  await t.test('a leader that loses its lease while it waits on a recheck makes no write afterwards', async t => {
    const pool = await s.nodes('fence', 3)
    let answered = false
    const prometheus = createServer((request, response) => {
      // Answers "still firing" only after the lease has changed hands.
      setTimeout(() => {
        answered = true
        response.setHeader('content-type', 'application/json')
        response.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{ metric: { node: pool[0] } }] } }))
      }, 6000)
    })
    await new Promise<void>(resolve => prometheus.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise(resolve => prometheus.close(resolve)))
    const url = `http://127.0.0.1:${(prometheus.address() as AddressInfo).port}`
    const controller = await s.controller('fence-a', { PROMETHEUS_URL: url })
    await waitFor('fence-a to lead', async () => await s.leaseHolder() === 'fence-a', { timeoutMs: 20_000 })
    const answer = await controller.post('/v1/alerts', notification([pool[0]!]))
    t.match(answer.body.decisions, [{ action: 'remediate' }])
    await new Promise(resolve => setTimeout(resolve, 1000))
    // Someone else takes the lease (and keeps renewing it) while the recheck is under way.
    const takeover = async () => await s.cp.kubectl(['patch', 'lease', '-n', 'self-healing-controller', 'self-healing-controller', '--type=merge', '-p',
      JSON.stringify({ spec: { holderIdentity: 'intruder', renewTime: new Date().toISOString().replace('Z', '000Z'), leaseDurationSeconds: 4 } })])
    const takenAt = Date.now()
    t.equal((await takeover()).code, 0)
    const renew = setInterval(() => { void takeover() }, 1000)
    t.teardown(() => clearInterval(renew))
    await waitFor('fence-a to step down', async () => /lost the leadership/.test(controller.logs()), { timeoutMs: 5000 })
    await waitFor('Prometheus to answer', () => answered, { timeoutMs: 10_000 })
    await new Promise(resolve => setTimeout(resolve, 3000))
    t.same(cordonPatches(s, [pool[0]!], takenAt).map(e => e.requestURI), [], 'no write to the node once the lease was lost')
    t.same(await s.cordoned(pool), [], 'not cordoned')
    t.equal(await s.phase(pool[0]!), 'pending')
    clearInterval(renew)
    await controller.kill('SIGTERM')
  })
})
