import { EventsV1Api } from '@kubernetes/client-node'
import t from 'tap'
import { binariesForTest, waitFor } from '../support/controlplane.ts'
import { notification, startScenario } from '../support/scenario.ts'

const bins = await binariesForTest()

t.test('a firing alert drains its node on a real cluster, with exactly the deploy/ ClusterRole', { skip: bins.skip ?? false, timeout: 240_000 }, async t => {
  const s = await startScenario(bins.binDir!)
  t.teardown(() => s.stop())
  await s.nodes('app', 3)
  await s.cp.kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'agent', namespace: 'default' },
      spec: {
        selector: { matchLabels: { app: 'agent' } },
        template: { metadata: { labels: { app: 'agent' } }, spec: { nodeSelector: { pool: 'app' }, tolerations: [{ operator: 'Exists' }], containers: [{ name: 'agent', image: 'registry.example/agent:1' }] } }
      }
    })
  })
  await s.deploy('web', 'app', 6, { maxUnavailable: 1 })
  await waitFor('a DaemonSet pod on app-1', async () => (await s.pods('agent')).some(p => p.spec?.nodeName === 'app-1' && p.status?.phase === 'Running'), { timeoutMs: 60_000 })
  const before = (await s.pods('web')).filter(p => p.spec?.nodeName === 'app-1').length
  t.ok(before > 0, `app-1 runs ${before} web pods`)

  const controller = await s.controller('replica-a')
  const answer = await controller.post('/v1/alerts', notification(['app-1']))
  t.equal(answer.status, 202)
  t.match(answer.body.decisions, [{ node: 'app-1', action: 'remediate' }])

  await waitFor('app-1 to finish its remediation', async () => await s.phase('app-1') === 'failed', { timeoutMs: 90_000 })
  const state = await s.state('app-1')
  t.same(state.history.map((h: { to: string }) => h.to), ['pending', 'cordoned', 'draining', 'remediating', 'failed'])
  t.equal(state.outcome, 'not-performed')
  t.match(state.reason, /provider none: .*requested action 'reboot' was not performed.*stays cordoned for an operator/, 'PROVIDER=none fixes nothing, and says so')
  t.equal((await s.node('app-1')).spec?.unschedulable, true, 'a drained node nobody fixed stays out of service')

  const web = await s.pods('web')
  t.equal(web.filter(p => p.spec?.nodeName === 'app-1').length, 0, 'no web pod left on app-1')
  await waitFor('6 web pods running elsewhere', async () => (await s.pods('web')).filter(p => p.status?.phase === 'Running' && p.spec?.nodeName !== 'app-1').length === 6, { timeoutMs: 60_000 })
  t.ok((await s.pods('agent')).some(p => p.spec?.nodeName === 'app-1'), 'the DaemonSet pod stayed')

  const events = (await s.cp.kubeConfig().makeApiClient(EventsV1Api).listNamespacedEvent({ namespace: 'default' })).items
    .filter(e => e.regarding?.kind === 'Node' && e.regarding.name === 'app-1' && e.reportingController === 'self-healing-controller.io/controller')
  t.same(events.map(e => e.reason).sort(), ['RemediationCordoned', 'RemediationDraining', 'RemediationFailed', 'RemediationPending', 'RemediationRemediating'].sort())
  t.ok(events.every(e => e.reportingInstance === 'replica-a'))
  const described = await s.cp.kubectl(['describe', 'node', 'app-1'])
  t.match(described.stdout, /RemediationCordoned/, 'kubectl describe node tells the story')

  const mutations = s.mutationsByController()
  t.ok(mutations.some(e => e.verb === 'create' && /\/pods\/[^/]+\/eviction$/.test(e.requestURI)), 'pods left through the Eviction API')
  t.notOk(mutations.some(e => e.verb === 'delete' && /\/pods\//.test(e.requestURI)), 'no pod was deleted directly')
})
