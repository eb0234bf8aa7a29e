import t from 'tap'
import { binariesForTest, waitFor } from '../support/controlplane.ts'
import { notification, startScenario } from '../support/scenario.ts'

const bins = await binariesForTest()

t.test('resolved before its turn, and an operator uncordoning mid-drain', { skip: bins.skip ?? false, timeout: 240_000 }, async t => {
  const s = await startScenario(bins.binDir!)
  t.teardown(() => s.stop())
  const nodes = await s.nodes('app', 4)
  await s.deploy('pay', 'app', 2, { minAvailable: 2 })
  const victim = (await s.pods('pay'))[0]!.spec!.nodeName!
  const [waiting, alreadyCordoned] = nodes.filter(n => n !== victim)
  // An operator had cordoned this one before any alert: releasing it must keep their choice.
  await s.cp.kubectl(['cordon', alreadyCordoned!])
  const controller = await s.controller('replica-a', { MAX_CONCURRENT_DRAINS: '1', BREAKER_MIN_NODES: '10', DRAIN_TIMEOUT: '120s', POOL_MAX_UNAVAILABLE: '2' })

  await controller.post('/v1/alerts', notification([victim]))
  await waitFor('the victim draining', async () => await s.phase(victim) === 'draining', { timeoutMs: 30_000 })
  const queued = await controller.post('/v1/alerts', notification([waiting!, alreadyCordoned!]))
  t.same(queued.body.decisions.map((d: { action: string }) => d.action), ['deferred', 'deferred'])

  const resolved = await controller.post('/v1/alerts', notification([waiting!, alreadyCordoned!], { status: 'resolved' }))
  t.same(resolved.body.decisions.map((d: { action: string }) => d.action), ['cancelled', 'cancelled'])
  t.equal(await s.phase(waiting!), 'cancelled')
  t.not((await s.node(waiting!)).spec?.unschedulable, true, 'never cordoned')
  t.equal((await s.node(alreadyCordoned!)).spec?.unschedulable, true, 'the operator\'s cordon is kept')

  // The operator disagrees with the drain under way and uncordons the node.
  await s.cp.kubectl(['uncordon', victim])
  await waitFor('the controller to stand down', async () => await s.phase(victim) === 'cancelled', { timeoutMs: 20_000 })
  t.match((await s.state(victim)).reason, /made schedulable by someone else/)
  const repeat = await controller.post('/v1/alerts', notification([victim]))
  t.match(repeat.body.decisions, [{ action: 'ignored', reason: /duplicate/ }], 'Alertmanager\'s repeat does not restart it')
  await new Promise(resolve => setTimeout(resolve, 4000))
  t.not((await s.node(victim)).spec?.unschedulable, true, 'not re-cordoned, several reconcile passes later')
  const patches = s.mutationsByController().filter(e => e.verb === 'patch' && e.requestURI.startsWith(`/api/v1/nodes/${victim}`))
  t.ok(patches.length <= 6, `no patch loop on the node (${patches.length} patches)`)
})
