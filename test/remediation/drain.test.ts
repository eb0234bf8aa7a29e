import { pino } from 'pino'
import t from 'tap'
import type { Cluster } from '../../src/cluster.ts'
import { drainNode, skipReason } from '../../src/remediation/drain.ts'
import { seededSim } from '../support/sim.ts'

const log = pino({ level: 'silent' })
const base = { excludeAnnotation: 'x/drain-exclude', forceDeleteOnTimeout: false, now: Date.now, log, fence: () => true }

t.test('pods that stay: finished, DaemonSet, mirror, opted out — in kubectl\'s order', async t => {
  const pod = (extra: object) => ({ metadata: { name: 'p', namespace: 'd', ...extra }, status: { phase: 'Running' } })
  t.equal(skipReason({ ...pod({}), status: { phase: 'Succeeded' } }, 'x'), 'finished (Succeeded)')
  t.equal(skipReason(pod({ ownerReferences: [{ kind: 'DaemonSet', name: 'd', apiVersion: 'apps/v1', uid: 'u' }] }), 'x'), 'DaemonSet pod')
  t.equal(skipReason(pod({ annotations: { 'kubernetes.io/config.mirror': 'h' } }), 'x'), 'mirror pod')
  t.equal(skipReason(pod({ annotations: { x: 'true' } }), 'x'), 'opted out by x')
  t.equal(skipReason(pod({ annotations: { x: 'false' } }), 'x'), undefined)
  t.equal(skipReason(pod({ ownerReferences: [{ kind: 'ReplicaSet', name: 'r', apiVersion: 'apps/v1', uid: 'u' }] }), 'x'), undefined)
})

t.test('a 429 is retried no sooner than Retry-After, even when our backoff is shorter', async t => {
  const sim = seededSim({ retryAfterMs: 300, startDelayMs: 5000 })
  t.teardown(() => sim.close())
  // db: 3 replicas, minAvailable 2; draining worker-6 and worker-7 together leaves the second blocked.
  for (const node of ['worker-6', 'worker-7']) await sim.patchNode(node, { unschedulable: true })
  await sim.evictPod('default', 'db-6')
  const attempts: number[] = []
  const cluster: Cluster = { ...sim, evictPod: async (ns, name) => { if (name === 'db-7') attempts.push(Date.now()); return await sim.evictPod(ns, name) } }
  const result = await drainNode({ ...base, cluster, node: 'worker-7', deadline: Date.now() + 1100, concurrency: 5, backoff: { initialMs: 10, maxMs: 20 }, signal: new AbortController().signal })
  t.equal(result.outcome, 'drain-timeout')
  t.same(result.remaining, ['default/db-7'])
  t.ok(attempts.length >= 2 && attempts.length <= 5, `${attempts.length} attempts in 1.1s`)
  for (let i = 1; i < attempts.length; i++) t.ok(attempts[i]! - attempts[i - 1]! >= 290, `attempt ${i + 1} waited for Retry-After`)
})

t.test('never more evictions in flight than the concurrency', async t => {
  const sim = seededSim({ terminationDelayMs: 30 })
  t.teardown(() => sim.close())
  await sim.patchNode('worker-2', { unschedulable: true })
  for (let i = 0; i < 12; i++) sim.addPod({ metadata: { name: `extra-${i}`, namespace: 'default', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'extra', uid: 'e' }] }, spec: { nodeName: 'worker-2', containers: [] }, status: { phase: 'Running' } })
  let inFlight = 0
  let most = 0
  const cluster: Cluster = {
    ...sim,
    evictPod: async (ns, name) => { inFlight++; most = Math.max(most, inFlight); try { return await sim.evictPod(ns, name) } finally { inFlight-- } },
    waitForPodGone: async (pod, signal) => { inFlight++; most = Math.max(most, inFlight); try { await sim.waitForPodGone(pod, signal) } finally { inFlight-- } }
  }
  const result = await drainNode({ ...base, cluster, node: 'worker-2', deadline: Date.now() + 5000, concurrency: 3, backoff: { initialMs: 10, maxMs: 20 }, signal: new AbortController().signal })
  t.equal(result.outcome, 'drained')
  t.equal(result.evicted, 14)
  t.equal(most, 3)
})

t.test('an abort stops the drain at once and is not mistaken for the deadline', async t => {
  const sim = seededSim()
  t.teardown(() => sim.close())
  const controller = new AbortController()
  setTimeout(() => controller.abort(new Error('operator uncordoned')), 100)
  await t.rejects(drainNode({ ...base, cluster: sim, node: 'worker-10', deadline: Date.now() + 10_000, concurrency: 5, backoff: { initialMs: 10, maxMs: 20 }, signal: controller.signal }), { message: 'operator uncordoned' })
})
