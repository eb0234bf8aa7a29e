import type { Test } from 'tap'
import type { V1Node, V1Pod } from '@kubernetes/client-node'
import { isClusterError, type Cluster } from '../../src/cluster.ts'
import { deadlineSignal } from '../../src/timers.ts'
import { nodeRef } from '../../src/remediation/store.ts'

/**
 * The semantics every Cluster implementation owes the engine, checked the same way on the
 * simulated cluster and on a real API server. Checks are phrased so that both can pass them:
 * what a real cluster does eventually (watch caches, the disruption controller) is awaited with a
 * bounded wait; the fixture hides how a pod is made Running or a budget is put in force.
 */
export type ContractPod = {
  name: string
  node: string
  /** Pods on `ContractFixture.node` can only be Running. */
  phase: 'Running' | 'Pending' | 'Succeeded'
  labels?: Record<string, string>
  finalizers?: string[]
}

export type ContractPdb = { name: string, minAvailable: number, matchLabels: Record<string, string> }

export type ContractFixture = {
  cluster: Cluster
  namespace: string
  /** A node whose deleted pods terminate promptly (a kubelet: KWOK's fake one, or the sim's timers). */
  node: string
  /** A node nothing terminates pods on, for pods that must stay put: finished, pending, held by a finalizer. */
  idleNode: string
  /** Bound on every wait for something the implementation does eventually. */
  patienceMs: number
  /** Adds a node no kubelet manages; nothing but the test changes it. */
  addNode (name: string): Promise<void>
  removeNode (name: string): Promise<void>
  /** Resolves with the pod once it is in `phase` (Running pods also Ready). */
  addPod (pod: ContractPod): Promise<V1Pod>
  /** Resolves once the budget is in force: evictions are judged against it. */
  addPdb (pdb: ContractPdb): Promise<void>
  /** What an operator does to let a pod stuck on a finalizer go. */
  removeFinalizers (namespace: string, name: string): Promise<void>
  /** Reasons of the Events recorded about a node. */
  eventReasons (node: string): Promise<string[]>
  teardown (): Promise<void>
}

/** Polls `probe` until it returns a value other than undefined/false, for at most `timeoutMs`. */
export async function eventually<T> (what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, intervalMs = 25): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined && value !== false) return value
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
}

async function errorOf (promise: Promise<unknown>): Promise<unknown> {
  return promise.then(() => undefined, (err: unknown) => err)
}

const findNode = (nodes: V1Node[], name: string) => nodes.find(n => n.metadata?.name === name)
const findPod = (pods: V1Pod[], name: string) => pods.find(p => p.metadata?.name === name)

export async function clusterContract (t: Test, name: string, setup: () => Promise<ContractFixture>): Promise<void> {
  await t.test(`Cluster contract: ${name}`, async t => {
    const f = await setup()
    t.teardown(() => f.teardown())
    const { cluster, namespace } = f
    const wait = <T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false) => eventually(what, probe, f.patienceMs)

    await t.test('a stale resourceVersion conflicts; annotations merge, null deletes; unschedulable is patched', async t => {
      await f.addNode('contract-patch')
      const node = await cluster.getNode('contract-patch')
      t.ok(node, 'getNode reads a node')
      const first = await cluster.patchNode('contract-patch', { annotations: { 'example.com/a': '1', 'example.com/b': '2' } }, node!.metadata!.resourceVersion)
      t.equal(first.metadata?.annotations?.['example.com/a'], '1')
      t.equal(first.metadata?.annotations?.['example.com/b'], '2')
      t.not(first.metadata?.resourceVersion, node!.metadata!.resourceVersion, 'a write makes a new resourceVersion')

      const stale = await errorOf(cluster.patchNode('contract-patch', { annotations: { 'example.com/a': 'x' } }, node!.metadata!.resourceVersion))
      t.ok(isClusterError(stale, 'conflict'), `a write with a stale resourceVersion is a conflict (${String(stale)})`)
      t.equal((await cluster.getNode('contract-patch'))?.metadata?.annotations?.['example.com/a'], '1', 'and changed nothing')

      const second = await cluster.patchNode('contract-patch', { annotations: { 'example.com/b': null, 'example.com/c': '3' }, unschedulable: true }, first.metadata!.resourceVersion)
      t.equal(second.metadata?.annotations?.['example.com/a'], '1', 'untouched keys stay')
      t.notOk('example.com/b' in (second.metadata?.annotations ?? {}), 'null deletes')
      t.equal(second.metadata?.annotations?.['example.com/c'], '3')
      t.equal(second.spec?.unschedulable, true)
      t.equal((await cluster.getNode('contract-patch'))?.spec?.unschedulable, true, 'a fresh read sees the patch')

      const uncordoned = await cluster.patchNode('contract-patch', { unschedulable: false })
      t.not(uncordoned.spec?.unschedulable, true, 'without a resourceVersion the patch applies unconditionally')

      t.ok(isClusterError(await errorOf(cluster.patchNode('contract-missing', { unschedulable: true })), 'not-found'), 'patching a missing node is not-found')
      t.equal(await cluster.getNode('contract-missing'), undefined, 'getNode of a missing node is undefined')
    })

    await t.test('listNodes serves the watch: it sees patches, and hands out the same frozen object until it changes', async t => {
      await f.addNode('contract-cache')
      const patched = await cluster.patchNode('contract-cache', { annotations: { 'example.com/seen': 'yes' } })
      // Read your writes: a reconcile pass right after a cordon must count the node as cordoned.
      const own = findNode(await cluster.listNodes(), 'contract-cache')
      t.equal(own?.metadata?.annotations?.['example.com/seen'], 'yes', 'our own patch is listed at once')
      const cached = await wait('listNodes to show the patch', async () => {
        const node = findNode(await cluster.listNodes(), 'contract-cache')
        return node?.metadata?.annotations?.['example.com/seen'] === 'yes' && node
      })
      t.equal(cached.metadata?.resourceVersion, patched.metadata?.resourceVersion)
      t.equal(findNode(await cluster.listNodes(), 'contract-cache'), cached, 'same object while the node is unchanged')
      t.ok(Object.isFrozen(cached) && Object.isFrozen(cached.metadata), 'cached nodes are frozen: callers share them')
      await cluster.patchNode('contract-cache', { annotations: { 'example.com/seen': 'again' } })
      const changed = await wait('listNodes to show the second patch', async () => {
        const node = findNode(await cluster.listNodes(), 'contract-cache')
        return node?.metadata?.annotations?.['example.com/seen'] === 'again' && node
      })
      t.not(changed, cached, 'a changed node is a new object')
    })

    await t.test('onNodeChange reports added, updated and removed nodes until unsubscribed', async t => {
      const seen: V1Node[] = []
      const unsubscribe = cluster.onNodeChange(node => { if (node.metadata?.name === 'contract-watch') seen.push(node) })
      t.teardown(unsubscribe)
      await f.addNode('contract-watch')
      await wait('a notification for the new node', () => seen.length > 0)
      await cluster.patchNode('contract-watch', { annotations: { 'example.com/step': 'updated' } })
      await wait('a notification with the update', () => seen.some(n => n.metadata?.annotations?.['example.com/step'] === 'updated'))
      const before = seen.length
      await f.removeNode('contract-watch')
      await wait('a notification for the removal', async () => seen.length > before && findNode(await cluster.listNodes(), 'contract-watch') === undefined)

      unsubscribe()
      const after = seen.length
      await f.addNode('contract-watch')
      await wait('listNodes to show the re-added node', async () => findNode(await cluster.listNodes(), 'contract-watch'))
      await new Promise(resolve => setTimeout(resolve, 50))
      t.equal(seen.length, after, 'no notification after unsubscribing')
      await f.removeNode('contract-watch')
    })

    await t.test('eviction without a budget: evicted, the pod goes, and a second eviction finds it gone', async t => {
      const pod = await f.addPod({ name: 'contract-free', node: f.node, phase: 'Running', labels: { app: 'contract-free' } })
      t.ok(findPod(await cluster.listPodsOnNode(f.node), 'contract-free'), 'listPodsOnNode lists the pod')
      t.same(await cluster.evictPod(namespace, 'contract-free'), { status: 'evicted' })
      const deadline = deadlineSignal(f.patienceMs)
      t.teardown(deadline.clear)
      await cluster.waitForPodGone(pod, deadline.signal)
      t.pass('waitForPodGone resolved')
      t.notOk(findPod(await cluster.listPodsOnNode(f.node), 'contract-free'), 'no longer listed on its node')
      t.same(await cluster.evictPod(namespace, 'contract-free'), { status: 'gone' })
      await cluster.waitForPodGone(pod, deadline.signal)
      t.pass('waitForPodGone of a pod already gone resolves at once')
    })

    await t.test('a missing pod: eviction answers gone, deletion succeeds', async t => {
      t.same(await cluster.evictPod(namespace, 'contract-never-existed'), { status: 'gone' })
      await cluster.deletePod(namespace, 'contract-never-existed', 0)
      t.pass('deleting a missing pod is not an error')
    })

    await t.test('a budget with no disruption left blocks eviction (429); finished and pending pods skip it', async t => {
      const labels = { app: 'contract-db' }
      await f.addPod({ name: 'contract-db-1', node: f.node, phase: 'Running', labels })
      await f.addPod({ name: 'contract-db-2', node: f.node, phase: 'Running', labels })
      await f.addPdb({ name: 'contract-db', minAvailable: 2, matchLabels: labels })
      const answer = await cluster.evictPod(namespace, 'contract-db-1')
      t.equal(answer.status, 'blocked')
      if (answer.status === 'blocked') {
        t.match(answer.message, /disruption budget/, 'the server\'s message')
        t.ok(answer.retryAfterMs === undefined || answer.retryAfterMs >= 0, `retryAfterMs is a hint when present (${answer.retryAfterMs})`)
      }
      const still = findPod(await cluster.listPodsOnNode(f.node), 'contract-db-1')
      t.ok(still, 'the pod is still there')
      t.notOk(still?.metadata?.deletionTimestamp, 'and not being deleted')

      const done = await f.addPod({ name: 'contract-db-done', node: f.idleNode, phase: 'Succeeded', labels })
      t.same(await cluster.evictPod(namespace, 'contract-db-done'), { status: 'evicted' }, 'a Succeeded pod is evicted despite the budget')
      const deadline = deadlineSignal(f.patienceMs)
      t.teardown(deadline.clear)
      await cluster.waitForPodGone(done, deadline.signal)
      await f.addPod({ name: 'contract-db-pending', node: f.idleNode, phase: 'Pending', labels })
      t.same(await cluster.evictPod(namespace, 'contract-db-pending'), { status: 'evicted' }, 'a Pending pod is evicted despite the budget')
      t.equal((await cluster.evictPod(namespace, 'contract-db-2')).status, 'blocked', 'the Running pods are still protected')
    })

    await t.test('a pod covered by two budgets cannot be evicted', async t => {
      const labels = { app: 'contract-two' }
      await f.addPod({ name: 'contract-two', node: f.node, phase: 'Running', labels })
      await f.addPdb({ name: 'contract-two-a', minAvailable: 0, matchLabels: labels })
      await f.addPdb({ name: 'contract-two-b', minAvailable: 0, matchLabels: labels })
      const err = await errorOf(cluster.evictPod(namespace, 'contract-two'))
      t.ok(isClusterError(err, 'invalid'), `a configuration error, not worth retrying (${String(err)})`)
    })

    await t.test('a pod held by a finalizer: waitForPodGone waits until aborted, and resolves once it is released', async t => {
      const pod = await f.addPod({ name: 'contract-held', node: f.idleNode, phase: 'Running', labels: { app: 'contract-held' }, finalizers: ['example.com/hold'] })
      t.same(await cluster.evictPod(namespace, 'contract-held'), { status: 'evicted' })
      await wait('the pod to be Terminating', async () => findPod(await cluster.listPodsOnNode(f.idleNode), 'contract-held')?.metadata?.deletionTimestamp)

      const timedOut = await errorOf(cluster.waitForPodGone(pod, deadlineSignal(300).signal))
      t.equal((timedOut as Error | undefined)?.name, 'TimeoutError', 'rejects with the signal\'s reason at the deadline')
      const controller = new AbortController()
      const waiting = errorOf(cluster.waitForPodGone(pod, controller.signal))
      const reason = new Error('operator uncordoned the node')
      setTimeout(() => controller.abort(reason), 100)
      t.equal(await waiting, reason, 'rejects with exactly the abort reason')
      const preAborted = new AbortController()
      preAborted.abort(reason)
      t.equal(await errorOf(cluster.waitForPodGone(pod, preAborted.signal)), reason, 'an aborted signal rejects at once')

      await cluster.deletePod(namespace, 'contract-held', 0)
      t.ok(findPod(await cluster.listPodsOnNode(f.idleNode), 'contract-held'), 'even a grace-0 delete waits for the finalizer')
      const deadline = deadlineSignal(f.patienceMs)
      t.teardown(deadline.clear)
      const gone = cluster.waitForPodGone(pod, deadline.signal)
      let resolved = false
      void gone.then(() => { resolved = true }, () => {})
      await new Promise(resolve => setTimeout(resolve, 200))
      t.notOk(resolved, 'still waiting while the finalizer holds the pod')
      await f.removeFinalizers(namespace, 'contract-held')
      await gone
      t.pass('resolved once the finalizer was removed')
      t.notOk(findPod(await cluster.listPodsOnNode(f.idleNode), 'contract-held'), 'the pod is gone')
    })

    await t.test('recordEvent records an Event about the node', async t => {
      const node = (await cluster.getNode(f.node))!
      await cluster.recordEvent(nodeRef(node), { type: 'Normal', reason: 'ContractCheck', action: 'check', note: 'checked by the contract' })
      await cluster.recordEvent(nodeRef(node), { type: 'Warning', reason: 'ContractWarning', action: 'check', note: 'a warning' })
      const reasons = await wait('both events to be listed', async () => {
        const found = await f.eventReasons(f.node)
        return found.includes('ContractCheck') && found.includes('ContractWarning') && found
      })
      t.ok(reasons.includes('ContractCheck'))
    })

    await t.test('the controller state is written with optimistic concurrency', async t => {
      const before = await cluster.readControllerState()
      const key = 'contract.example.com/state'
      const written = await cluster.writeControllerState({ [key]: '{"a":1}' }, before.version)
      t.equal(written.annotations[key], '{"a":1}')
      t.not(written.version, before.version, 'a write makes a new version')
      t.same((await cluster.readControllerState()).annotations[key], '{"a":1}', 'read back')
      const stale = await cluster.writeControllerState({ [key]: '{"a":2}' }, before.version).then(() => undefined, (err: unknown) => err)
      t.ok(isClusterError(stale, 'conflict'), 'a stale version is refused')
      const removed = await cluster.writeControllerState({ [key]: null }, written.version)
      t.equal(removed.annotations[key], undefined, 'null removes the key')
    })
  })
}
