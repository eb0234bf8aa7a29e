import t from 'tap'
import { binariesForTest, waitFor } from '../support/controlplane.ts'
import { notification, startScenario } from '../support/scenario.ts'

const bins = await binariesForTest()

t.test('a PodDisruptionBudget that allows nothing: 429s, backoff, drain-timeout, nothing force-deleted', { skip: bins.skip ?? false, timeout: 180_000 }, async t => {
  const s = await startScenario(bins.binDir!)
  t.teardown(() => s.stop())
  await s.nodes('app', 2)
  await s.deploy('pay', 'app', 2, { minAvailable: 2 })
  const victim = (await s.pods('pay'))[0]!.spec!.nodeName!
  const controller = await s.controller('replica-a', { DRAIN_TIMEOUT: '8s', EVICTION_BACKOFF: '250ms', EVICTION_BACKOFF_MAX: '2s' })
  const started = Date.now()
  t.match((await controller.post('/v1/alerts', notification([victim]))).body.decisions, [{ action: 'remediate' }])

  await waitFor('the drain to end', async () => await s.phase(victim) === 'failed', { timeoutMs: 60_000 })
  const state = await s.state(victim)
  t.equal(state.outcome, 'drain-timeout')
  t.match(state.reason, /drain deadline reached with \d+ pods left .*nothing was force-deleted/)
  t.ok(Date.now() - started >= 8000, 'it waited for its deadline')
  t.equal((await s.node(victim)).spec?.unschedulable, true, 'left cordoned for an operator')

  const evictions = s.mutationsByController().filter(e => /\/pods\/[^/]+\/eviction$/.test(e.requestURI))
  t.ok(evictions.length >= 3, `evictions were retried (${evictions.length})`)
  t.ok(evictions.every(e => e.responseStatus?.code === 429), 'every one was refused with 429')
  t.ok(evictions.length <= 30, 'with backoff, not in a hot loop')
  t.notOk(s.mutationsByController().some(e => e.verb === 'delete'), 'no pod was deleted')
  t.equal((await s.pods('pay')).filter(p => p.spec?.nodeName === victim && p.metadata?.deletionTimestamp === undefined).length > 0, true, 'the protected pod still runs')
  const events = await s.cp.kubectl(['get', 'events', '-n', 'default', '--field-selector', `involvedObject.name=${victim}`, '-o', 'jsonpath={range .items[*]}{.type} {.reason}{"\\n"}{end}'])
  t.match(events.stdout, /Warning RemediationFailed/)
})
