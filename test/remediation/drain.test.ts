import type { V1Pod } from '@kubernetes/client-node'
import { pino } from 'pino'
import t from 'tap'
import type { Cluster } from '../../src/cluster.ts'
import { drainNode, type DrainOptions } from '../../src/remediation/drain.ts'
import { classifyPods } from '../../src/remediation/start-checks.ts'
import { view } from '../support/core.ts'
import { prefix, seededSim } from '../support/sim.ts'

const log = pino({ level: 'silent' })
const switches = { evictUnmanaged: false, deleteEmptyDirData: false, allowLocalDataLoss: false, excludeAnnotation: `${prefix}/drain-exclude` }

function options (cluster: Cluster, node: string, extra: Partial<DrainOptions> = {}): DrainOptions {
  return {
    cluster,
    node,
    deadline: Date.now() + 5000,
    concurrency: 5,
    classify: pods => classifyPods({ cluster, switches }, pods, view(node, { labels: { 'kubernetes.io/hostname': node } }), 'reboot'),
    forceDeleteOnTimeout: false,
    nodeReady: async () => true,
    backoff: { initialMs: 10, maxMs: 20 },
    signal: new AbortController().signal,
    fence: () => true,
    now: Date.now,
    log,
    ...extra
  }
}

const rsPod = (name: string, node: string, extra: Partial<V1Pod['spec']> = {}, meta: Record<string, unknown> = {}): V1Pod => ({
  metadata: { name, namespace: 'default', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'extra', uid: 'e', controller: true }], ...meta },
  spec: { nodeName: node, containers: [], ...extra },
  status: { phase: 'Running' }
})

t.test('pods that stay are skipped with their reason; the rest leave', async t => {
  const sim = seededSim()
  t.teardown(() => sim.close())
  await sim.patchNode('worker-3', { unschedulable: true })
  const result = await drainNode(options(sim, 'worker-3'))
  t.equal(result.outcome, 'drained')
  t.same(result.skipped.map(s => s.reason).sort(), ['DaemonSet pod', 'finished (Succeeded)', 'mirror pod'])
  t.same((await sim.listPodsOnNode('worker-3')).map(p => p.metadata!.name).sort(), ['kube-proxy-worker-3', 'node-exporter-worker-3', 'report-29031'])
})

t.test('a 429 is retried no sooner than Retry-After, even when our backoff is shorter', async t => {
  const sim = seededSim({ retryAfterMs: 300, startDelayMs: 5000 })
  t.teardown(() => sim.close())
  // db: 3 replicas, minAvailable 2; draining worker-6 and worker-7 together leaves the second blocked.
  for (const node of ['worker-6', 'worker-7']) await sim.patchNode(node, { unschedulable: true })
  await sim.evictPod('default', 'db-6')
  const attempts: number[] = []
  const cluster: Cluster = { ...sim, evictPod: async (ns, name) => { if (name === 'db-7') attempts.push(Date.now()); return await sim.evictPod(ns, name) } }
  const result = await drainNode(options(cluster, 'worker-7', { deadline: Date.now() + 1100 }))
  t.equal(result.outcome, 'drain-timeout')
  t.same(result.remaining, ['default/db-7'])
  t.ok(attempts.length >= 2 && attempts.length <= 5, `${attempts.length} attempts in 1.1s`)
  for (let i = 1; i < attempts.length; i++) t.ok(attempts[i]! - attempts[i - 1]! >= 290, `attempt ${i + 1} waited for Retry-After`)
})

t.test('EVICTION_CONCURRENCY bounds evictions in flight, not pods waiting to terminate', async t => {
  const sim = seededSim({ terminationDelayMs: 30 })
  t.teardown(() => sim.close())
  await sim.patchNode('worker-2', { unschedulable: true })
  sim.addReplicaSet('default', 'extra', 0)
  // Five pods that take long to leave (a finalizer holds them), twenty that leave at once.
  for (let i = 0; i < 5; i++) sim.addPod(rsPod(`slow-${i}`, 'worker-2', {}, { finalizers: ['example.com/hold'] }))
  for (let i = 0; i < 20; i++) sim.addPod(rsPod(`quick-${i}`, 'worker-2'))
  let inFlight = 0
  let most = 0
  const asked = new Map<string, number>()
  const started = Date.now()
  const cluster: Cluster = {
    ...sim,
    evictPod: async (ns, name) => { inFlight++; most = Math.max(most, inFlight); asked.set(name, Date.now() - started); try { return await sim.evictPod(ns, name) } finally { inFlight-- } }
  }
  const release = setTimeout(() => { for (let i = 0; i < 5; i++) sim.removeFinalizers('default', `slow-${i}`) }, 600)
  t.teardown(() => clearTimeout(release))
  const result = await drainNode(options(cluster, 'worker-2', { concurrency: 3 }))
  t.equal(result.outcome, 'drained')
  t.equal(most, 3, 'never more than 3 evictions in flight')
  const quick = [...asked].filter(([name]) => name.startsWith('quick-')).map(([, at]) => at)
  t.equal(quick.length, 20)
  t.ok(Math.max(...quick) < 500, `all 25 were asked to leave while the slow ones still terminated (last at ${Math.max(...quick)}ms)`)
})

t.test('lower priority leaves first, then by namespace and name', async t => {
  const sim = seededSim()
  t.teardown(() => sim.close())
  await sim.patchNode('worker-1', { unschedulable: true })
  sim.addReplicaSet('default', 'extra', 0)
  for (const [name, priority] of [['critical', 2000000000], ['batch', -10], ['web-z', 0], ['web-a', 0]] as const) sim.addPod(rsPod(name, 'worker-1', { priority }))
  const order: string[] = []
  const cluster: Cluster = { ...sim, evictPod: async (ns, name) => { order.push(name); return await sim.evictPod(ns, name) } }
  await drainNode(options(cluster, 'worker-1', { concurrency: 1 }))
  t.same(order.filter(n => ['critical', 'batch', 'web-z', 'web-a'].includes(n)), ['batch', 'web-a', 'web-z', 'critical'], order.join(','))
})

t.test('a pod covered by two budgets ends the drain at once, naming the pod and the budgets', async t => {
  const sim = seededSim()
  t.teardown(() => sim.close())
  sim.addPodDisruptionBudget({ metadata: { name: 'web-too', namespace: 'default' }, spec: { maxUnavailable: 1, selector: { matchLabels: { app: 'web' } } } })
  const started = Date.now()
  const result = await drainNode(options(sim, 'worker-3', { deadline: Date.now() + 30_000 }))
  t.equal(result.outcome, 'pdb-misconfigured')
  t.match(result.detail, /default\/web-3-[12] is covered by more than one PodDisruptionBudget \(web, web-too\)/)
  t.ok(Date.now() - started < 5000, 'at once, not at the deadline')
})

t.test('FORCE_DELETE_ON_TIMEOUT deletes what is left, but never a StatefulSet pod on a Ready node', async t => {
  const sim = seededSim()
  t.teardown(() => sim.close())
  sim.addController('default', 'StatefulSet', 'kafka')
  sim.addPod({ metadata: { name: 'kafka-0', namespace: 'default', finalizers: ['example.com/hold'], ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'kafka', uid: 'k', controller: true }] }, spec: { nodeName: 'worker-10', containers: [] }, status: { phase: 'Running' } })
  let ready = true
  const result = await drainNode(options(sim, 'worker-10', { deadline: Date.now() + 300, forceDeleteOnTimeout: true, nodeReady: async () => ready }))
  t.equal(result.outcome, 'drain-timeout')
  t.same(result.remaining, ['default/kafka-0'])
  t.match(result.detail, /StatefulSet pods on a Ready node are never force-deleted/)
  t.ok(sim.mutations.includes('delete pod default/legacy-0'), 'the ReplicaSet pod was force-deleted')
  t.notOk(sim.mutations.includes('delete pod default/kafka-0'))
  ready = false
  const again = await drainNode(options(sim, 'worker-10', { deadline: Date.now() + 300, forceDeleteOnTimeout: true, nodeReady: async () => ready }))
  t.equal(again.outcome, 'force-deleted', 'a NotReady node: its kubelet is not running it')
})

t.test('a protected pod appearing during the drain stops it rather than leaving it behind', async t => {
  const sim = seededSim({ terminationDelayMs: 200 })
  t.teardown(() => sim.close())
  const classify = async (pods: readonly V1Pod[]) => pods.map(p => ({ pod: `default/${p.metadata!.name}`, kind: p.metadata!.name === 'web-3-2' ? 'protected' as const : 'evictable' as const, reason: p.metadata!.name === 'web-3-2' ? 'emptyDir data would be lost (tmp)' : 'evictable' }))
  const result = await drainNode(options(sim, 'worker-3', { classify }))
  t.equal(result.outcome, 'protected-pods')
  t.match(result.detail, /default\/web-3-2: emptyDir data would be lost/)
  t.notOk(sim.mutations.includes('evict pod default/web-3-2'))
})

t.test('an abort stops the drain at once and is not mistaken for the deadline', async t => {
  const sim = seededSim()
  t.teardown(() => sim.close())
  const controller = new AbortController()
  setTimeout(() => controller.abort(new Error('operator uncordoned')), 100)
  await t.rejects(drainNode(options(sim, 'worker-10', { deadline: Date.now() + 10_000, signal: controller.signal })), { message: 'operator uncordoned' })
})

t.test('a fenced replica asks for no eviction', async t => {
  const sim = seededSim()
  t.teardown(() => sim.close())
  await t.rejects(drainNode(options(sim, 'worker-3', { fence: () => false })), { name: 'FencedError' })
  t.notOk(sim.mutations.some(m => m.startsWith('evict')))
})
