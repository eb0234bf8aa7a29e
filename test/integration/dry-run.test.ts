import t from 'tap'
import { binariesForTest } from '../support/controlplane.ts'
import { notification, saUser, startScenario } from '../support/scenario.ts'

const bins = await binariesForTest()

t.test('dry-run: decisions reported, zero mutating requests in the audit log', { skip: bins.skip ?? false, timeout: 180_000 }, async t => {
  const s = await startScenario(bins.binDir!)
  t.teardown(() => s.stop())
  const nodes = await s.nodes('app', 6)
  await s.deploy('web', 'app', 4)
  const controller = await s.controller('replica-a', { DRY_RUN: 'true' })
  const answer = await controller.post('/v1/alerts', notification([nodes[0]!, nodes[1]!, 'ghost']))
  t.equal(answer.body.dryRun, true)
  t.same(answer.body.decisions.map((d: { action: string }) => d.action), ['remediate', 'deferred', 'ignored'])
  const fault = await controller.post('/v1/faults', { node: nodes[2] })
  t.equal(fault.status, 401, 'fault injection has its own credential, and none is configured')
  await new Promise(resolve => setTimeout(resolve, 4000))
  const requests = s.cp.readAuditEvents().filter(e => e.user.username === saUser)
  t.ok(requests.some(e => e.verb === 'list' || e.verb === 'watch'), 'the controller did read the cluster')
  t.same(s.mutationsByController().map(e => `${e.verb} ${e.requestURI}`), [], 'and wrote nothing: no patch, no eviction, no Event, no Lease')
  t.same(await s.cordoned(nodes), [])
})
