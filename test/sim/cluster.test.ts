import t from 'tap'
import { isClusterError } from '../../src/cluster.ts'
import { deadlineSignal } from '../../src/timers.ts'
import { seededSim, until } from '../support/sim.ts'

t.test('patches with a stale resourceVersion conflict; annotations merge and null deletes', async t => {
  const sim = seededSim()
  t.teardown(() => sim.close())
  const node = (await sim.getNode('worker-1'))!
  await sim.patchNode('worker-1', { annotations: { a: '1', b: '2' } }, node.metadata!.resourceVersion)
  await t.rejects(sim.patchNode('worker-1', { annotations: { a: 'x' } }, node.metadata!.resourceVersion), { name: 'ClusterError', message: /was modified/ })
  const patched = await sim.patchNode('worker-1', { annotations: { b: null }, unschedulable: true })
  t.same(patched.metadata!.annotations, { a: '1' })
  t.equal(patched.spec!.unschedulable, true)
  await t.rejects(sim.patchNode('nope', {}), { name: 'ClusterError', message: /not found/ })
})

t.test('a PodDisruptionBudget answers 429 until replacements run', async t => {
  const sim = seededSim({ terminationDelayMs: 30, startDelayMs: 200 })
  t.teardown(() => sim.close())
  // db: 3 replicas, minAvailable 2 → one disruption allowed.
  t.same(await sim.evictPod('default', 'db-6'), { status: 'evicted' })
  const refused = await sim.evictPod('default', 'db-7')
  t.equal(refused.status, 'blocked')
  t.match(refused, { message: /disruption budget/, retryAfterMs: 30 })
  await until('a replacement db pod running', () => sim.pods().some(p => p.metadata!.name!.startsWith('db-r') && p.status!.phase === 'Running'))
  t.same(await sim.evictPod('default', 'db-7'), { status: 'evicted' }, 'budget restored by the replacement')
})

t.test('evicted pods terminate after a delay, and ReplicaSets recreate them on schedulable nodes', async t => {
  const sim = seededSim({ terminationDelayMs: 50 })
  t.teardown(() => sim.close())
  for (let i = 1; i <= 10; i++) if (i !== 2) await sim.patchNode(`worker-${i}`, { unschedulable: true })
  const [pod] = (await sim.listPodsOnNode('worker-1')).filter(p => p.metadata!.name === 'web-1-1')
  await sim.evictPod('default', 'web-1-1')
  t.ok((await sim.listPodsOnNode('worker-1')).find(p => p.metadata!.name === 'web-1-1')?.metadata?.deletionTimestamp, 'Terminating first')
  await sim.waitForPodGone(pod!, deadlineSignal(2000).signal)
  const replacement = sim.pods().find(p => p.metadata!.name!.startsWith('web-r'))
  t.equal(replacement?.spec?.nodeName, 'worker-2', 'placed on the only schedulable node')
})

t.test('finished and pending pods skip the budget; a pod with a finalizer stays Terminating', async t => {
  const sim = seededSim()
  t.teardown(() => sim.close())
  t.same(await sim.evictPod('default', 'report-29031'), { status: 'evicted' })
  await sim.evictPod('default', 'legacy-0')
  const stuck = sim.pods().find(p => p.metadata!.name === 'legacy-0')!
  await t.rejects(sim.waitForPodGone(stuck, deadlineSignal(200).signal), { name: 'TimeoutError' }, 'still there after 200ms')
  await sim.deletePod('default', 'legacy-0', 0)
  t.ok(sim.pods().some(p => p.metadata!.name === 'legacy-0'), 'even a grace-0 delete waits for finalizers')
  sim.removeFinalizers('default', 'legacy-0')
  t.notOk(sim.pods().some(p => p.metadata!.name === 'legacy-0'))
  t.same(await sim.evictPod('default', 'legacy-0'), { status: 'gone' })
})

t.test('an unreachable API server fails every call as unavailable', async t => {
  const sim = seededSim()
  t.teardown(() => sim.close())
  sim.setReachable(false)
  const err = await sim.listNodes().catch(e => e)
  t.ok(isClusterError(err, 'unavailable'))
  sim.setReachable(true)
  t.equal((await sim.listNodes()).length, 10)
})

t.test('a rebooted node is NotReady for a while, then Ready on a new boot, and watchers hear both', async t => {
  const sim = seededSim()
  t.teardown(() => sim.close())
  const ready = (node: Awaited<ReturnType<typeof sim.getNode>>) => node!.status!.conditions!.find(c => c.type === 'Ready')!.status
  const before = (await sim.getNode('worker-4'))!
  t.equal(ready(before), 'True')
  await new Promise(resolve => setImmediate(resolve)) // the seeding's own notifications
  const seen: string[] = []
  const unsubscribe = sim.onNodeChange(node => { if (node.metadata!.name === 'worker-4') seen.push(ready(node)) })
  t.teardown(unsubscribe)
  sim.rebootNode('worker-4', 50)
  const down = (await sim.getNode('worker-4'))!
  t.equal(ready(down), 'False')
  t.equal(down.status!.nodeInfo!.bootID, before.status!.nodeInfo!.bootID, 'same boot while going down')
  await until('worker-4 back', async () => ready(await sim.getNode('worker-4')) === 'True')
  const back = (await sim.getNode('worker-4'))!
  t.not(back.status!.nodeInfo!.bootID, before.status!.nodeInfo!.bootID, 'a new boot')
  await until('both changes heard', () => seen.length >= 2)
  t.same(seen, ['False', 'True'])
})
