import { EventsV1Api } from '@kubernetes/client-node'
import t from 'tap'
import { binariesForTest, waitFor } from '../support/controlplane.ts'
import { notification, startScenario } from '../support/scenario.ts'

const bins = await binariesForTest()

t.test('two replicas: exactly one acts; kill the leader mid-drain and the other finishes', { skip: bins.skip ?? false, timeout: 240_000 }, async t => {
  const s = await startScenario(bins.binDir!)
  t.teardown(() => s.stop())
  await s.nodes('app', 3)
  await s.deploy('pay', 'app', 2, { minAvailable: 2 })
  const victim = (await s.pods('pay'))[0]!.spec!.nodeName!
  const env = { DRAIN_TIMEOUT: '120s' }
  const replicas = [await s.controller('replica-a', env), await s.controller('replica-b', env)]
  const holder = await waitFor('a leader', () => s.leaseHolder(), { timeoutMs: 20_000 })
  const leader = replicas.find(r => r.name === holder)!
  const follower = replicas.find(r => r.name !== holder)!

  // Any replica accepts the webhook: the follower records it on the Node, the leader acts on it.
  const answer = await follower.post('/v1/alerts', notification([victim]))
  t.equal(answer.status, 202)
  await waitFor('the leader to drain', async () => await s.phase(victim) === 'draining', { timeoutMs: 30_000 })
  const events = async () => (await s.cp.kubeConfig().makeApiClient(EventsV1Api).listNamespacedEvent({ namespace: 'default' })).items
    .filter(e => e.regarding?.name === victim && e.reportingController === 'self-healing-controller.io/controller')
  const acted = (await events()).filter(e => e.reason !== 'RemediationPending')
  t.ok(acted.length >= 2 && acted.every(e => e.reportingInstance === leader.name), `only the leader acted (${acted.map(e => `${e.reason}@${e.reportingInstance}`)})`)
  const followerMetrics = await fetch(`${follower.url}/metrics`).then(r => r.text())
  t.match(followerMetrics, /shc_leader 0/)

  await leader.kill('SIGKILL')
  await waitFor('the follower to take the lease', async () => await s.leaseHolder() === follower.name, { timeoutMs: 20_000 })
  await s.relax('pay')
  await waitFor('the follower to finish the drain', async () => await s.phase(victim) === 'failed', { timeoutMs: 60_000 })
  const after = await waitFor('both Events of the end listed', async () => {
    const found = (await events()).filter(e => e.reason === 'RemediationRemediating' || e.reason === 'RemediationFailed')
    return found.length === 2 && found
  }, { timeoutMs: 10_000 })
  t.ok(after.every(e => e.reportingInstance === follower.name), 'the new leader finished it')
  t.same((await s.state(victim)).history.map((h: { to: string }) => h.to), ['pending', 'cordoned', 'draining', 'remediating', 'failed'])
  t.equal((await s.state(victim)).outcome, 'not-performed', 'PROVIDER=none: drained, left cordoned')
})
