import t from 'tap'
import { binariesForTest, waitFor } from '../support/controlplane.ts'
import { notification, startScenario } from '../support/scenario.ts'

const bins = await binariesForTest()

t.test('SIGKILL mid-drain: the restarted controller resumes, keeps the deadline and the semaphore', { skip: bins.skip ?? false, timeout: 240_000 }, async t => {
  const s = await startScenario(bins.binDir!)
  t.teardown(() => s.stop())
  const nodes = await s.nodes('app', 4)
  // A budget that allows nothing holds the drain open until the test relaxes it.
  await s.deploy('pay', 'app', 2, { minAvailable: 2 })
  const victim = (await s.pods('pay'))[0]!.spec!.nodeName!
  const other = nodes.find(n => n !== victim)!
  const env = { MAX_CONCURRENT_DRAINS: '1', BREAKER_MIN_NODES: '10', DRAIN_TIMEOUT: '120s', POOL_MAX_UNAVAILABLE: '2' }
  let maxCordoned = 0
  const watch = setInterval(() => { void s.cordoned(nodes).then(c => { maxCordoned = Math.max(maxCordoned, c.length) }).catch(() => {}) }, 200)
  t.teardown(() => clearInterval(watch))

  const first = await s.controller('replica-a', env)
  await first.post('/v1/alerts', notification([victim]))
  await waitFor('the drain to be under way', async () => await s.phase(victim) === 'draining', { timeoutMs: 30_000 })
  const deadline = (await s.state(victim)).drainDeadline
  await first.kill('SIGKILL')

  const second = await s.controller('replica-b', env)
  const deferred = await second.post('/v1/alerts', notification([other]))
  t.match(deferred.body.decisions, [{ node: other, action: 'deferred', rule: 'semaphore' }], 'the slot is still taken after the crash')
  await new Promise(resolve => setTimeout(resolve, 3000))
  t.equal(await s.phase(victim), 'draining', 'the new process took the drain over')
  t.equal(await s.phase(other), 'pending')
  await s.relax('pay')
  await waitFor('the resumed drain to finish', async () => await s.phase(victim) === 'failed', { timeoutMs: 60_000 })
  t.equal((await s.state(victim)).drainDeadline, deadline, 'the deadline survived the restart')
  t.equal(await s.phase(other), 'pending', 'PROVIDER=none fixed nothing: the drained node keeps the slot')
  await s.cp.kubectl(['uncordon', victim])
  await waitFor('the waiting node to be remediated next, once an operator took the first back', async () => await s.phase(other) === 'failed', { timeoutMs: 60_000 })
  t.equal(maxCordoned, 1, 'never more nodes cordoned than the semaphore allows')
  const history = (await s.state(victim)).history.map((h: { to: string }) => h.to)
  t.same(history, ['pending', 'cordoned', 'draining', 'remediating', 'failed', 'cancelled'], 'no step repeated or skipped')
})
