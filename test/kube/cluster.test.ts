// src/kube/cluster.ts on a real control plane (etcd, kube-apiserver, controller-manager with the
// disruption controller, KWOK fake kubelets): the shared Cluster contract, then what only a real
// API server can show: Events as kubectl prints them, a watch instead of polling (read from the
// audit log), RBAC refusals, and an API server that goes away.
import net from 'node:net'
import path from 'node:path'
import t from 'tap'
import { pino } from 'pino'
import {
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  PolicyV1Api,
  setHeaderOptions,
  type V1Node,
  type V1Pod,
  type V1PodStatus
} from '@kubernetes/client-node'
import { isClusterError } from '../../src/cluster.ts'
import { createKubeCluster, type KubeClusterOptions } from '../../src/kube/cluster.ts'
import { keptAnnotations } from '../../src/kube/lean-node.ts'
import { forEachLimited } from '../../src/concurrency.ts'
import { deadlineSignal } from '../../src/timers.ts'
import { clusterContract, eventually, type ContractPod } from '../support/cluster-contract.ts'
import { binariesForTest, startControlPlane, waitFor } from '../support/controlplane.ts'
import { startCuttableProxy } from './cuttable-proxy.ts'
import { nodeRef } from '../../src/remediation/store.ts'

const NS = 'default'
const KWOK_NODE = 'kwok-contract'
const IDLE_NODE = 'idle-contract'
const CONTROLLER = 'self-healing-controller.io/controller'
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch)
const log = pino({ level: process.env.SHC_TEST_LOG ?? 'silent' })

const bins = await binariesForTest()

// The contract writes example.com/… annotations and reads them back from the cache, which keeps
// only the annotations it is told to.
const ours = keptAnnotations('self-healing-controller.io')
const keepAnnotation = (key: string) => key.startsWith('example.com/') || ours(key)

function optionsFor (kubeConfig: KubeConfig, extra: Partial<KubeClusterOptions> = {}): KubeClusterOptions {
  return { kubeConfig, reportingController: CONTROLLER, reportingInstance: 'test-replica-0', log, keepAnnotation, stateLease: { namespace: 'default', name: 'shc-contract' }, ...extra }
}

async function errorOf (promise: Promise<unknown>): Promise<unknown> {
  return promise.then(() => undefined, (err: unknown) => err)
}

/**
 * A node no kubelet manages. It comes with the annotation kube-controller-manager's TTL controller
 * would otherwise add right after creation, racing the test's own optimistic-concurrency writes.
 */
function plainNode (name: string): V1Node {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, annotations: { 'node.alpha.kubernetes.io/ttl': '0' } } }
}

const isReady = (pod: V1Pod) => pod.status?.conditions?.some(c => c.type === 'Ready' && c.status === 'True') === true

/** The status a kubelet would report; set by hand on the node no kubelet manages. */
function statusFor (phase: ContractPod['phase']): V1PodStatus | undefined {
  if (phase === 'Running') return { phase, conditions: [{ type: 'Ready', status: 'True' }] }
  if (phase === 'Succeeded') return { phase }
  return undefined
}

async function closedPort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  await new Promise(resolve => server.close(resolve))
  return port
}

t.test('Cluster on Kubernetes', { skip: bins.skip ?? false, timeout: 240_000 }, async t => {
  const t0 = Date.now()
  const cp = await startControlPlane({ binDir: bins.binDir })
  t.teardown(() => cp.stop())
  t.comment(`control plane up in ${Date.now() - t0} ms`)
  const kc = cp.kubeConfig()
  const core = kc.makeApiClient(CoreV1Api)
  const policy = kc.makeApiClient(PolicyV1Api)
  await cp.createFakeNodes([{ name: KWOK_NODE }])
  await core.createNode({ body: plainNode(IDLE_NODE) })

  async function addPod (pod: ContractPod): Promise<V1Pod> {
    const onKwok = pod.node === KWOK_NODE
    if (onKwok && pod.phase !== 'Running') throw new Error('KWOK runs every pod: put other phases on the idle node')
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: pod.name, labels: pod.labels ?? {}, ...(pod.finalizers ? { finalizers: pod.finalizers } : {}) },
        // KWOK never pulls or runs the image.
        spec: { nodeName: pod.node, containers: [{ name: 'app', image: 'registry.invalid/app:1' }] }
      }
    })
    const status = onKwok ? undefined : statusFor(pod.phase)
    if (status !== undefined) await core.patchNamespacedPodStatus({ name: pod.name, namespace: NS, body: { status } }, mergePatch)
    return waitFor(`pod ${pod.name} ${pod.phase}`, async () => {
      const current = await core.readNamespacedPod({ name: pod.name, namespace: NS })
      return current.status?.phase === pod.phase && (pod.phase !== 'Running' || isReady(current)) ? current : undefined
    }, { timeoutMs: 30_000 })
  }

  await clusterContract(t, 'kubernetes', async () => {
    const cluster = await createKubeCluster(optionsFor(kc))
    return {
      cluster,
      namespace: NS,
      node: KWOK_NODE,
      idleNode: IDLE_NODE,
      patienceMs: 30_000,
      async addNode (name) { await core.createNode({ body: plainNode(name) }) },
      async removeNode (name) { await core.deleteNode({ name }) },
      addPod,
      async addPdb (pdb) {
        await policy.createNamespacedPodDisruptionBudget({
          namespace: NS,
          body: { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: pdb.name }, spec: { minAvailable: pdb.minAvailable, selector: { matchLabels: pdb.matchLabels } } }
        })
        // The disruption controller (kube-controller-manager) computes the budget; until it has,
        // the API server answers 429 "still being processed" for any eviction.
        const labelSelector = Object.entries(pdb.matchLabels).map(([k, v]) => `${k}=${v}`).join(',')
        await waitFor(`the disruption controller to process ${pdb.name}`, async () => {
          const [current, pods] = await Promise.all([
            policy.readNamespacedPodDisruptionBudget({ name: pdb.name, namespace: NS }),
            core.listNamespacedPod({ namespace: NS, labelSelector })
          ])
          const healthy = pods.items.filter(p => p.status?.phase === 'Running' && isReady(p) && !p.metadata?.deletionTimestamp).length
          return (current.status?.observedGeneration ?? 0) >= (current.metadata?.generation ?? 1) && current.status?.currentHealthy === healthy
        }, { timeoutMs: 30_000 })
      },
      async removeFinalizers (namespace, name) {
        await core.patchNamespacedPod({ name, namespace, body: { metadata: { finalizers: null } } }, mergePatch)
      },
      async eventReasons (node) {
        const events = await core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${node}` })
        return events.items.map(e => e.reason ?? '')
      },
      async teardown () { cluster.close() }
    }
  })

  await t.test('Events show in kubectl get events and kubectl describe node', async t => {
    const cluster = await createKubeCluster(optionsFor(kc))
    t.teardown(() => cluster.close())
    const node = (await cluster.getNode(KWOK_NODE))!
    await cluster.recordEvent(nodeRef(node), { type: 'Warning', reason: 'RemediationFailed', action: 'failed', note: 'drain-timeout: 1 pod left on the node' })

    const got = await cp.kubectl(['get', 'events', '-n', NS, '--field-selector', `involvedObject.name=${KWOK_NODE}`, '-o', 'json'])
    t.equal(got.code, 0, got.stderr)
    const items = (JSON.parse(got.stdout) as { items: Array<Record<string, any>> }).items
    const event = items.find(e => e.reason === 'RemediationFailed')
    t.ok(event, 'kubectl get events --field-selector involvedObject.name=NODE lists it')
    t.match(event, {
      type: 'Warning',
      message: 'drain-timeout: 1 pod left on the node',
      involvedObject: { kind: 'Node', name: KWOK_NODE, uid: node.metadata!.uid, apiVersion: 'v1' },
      reportingComponent: CONTROLLER,
      reportingInstance: 'test-replica-0',
      action: 'failed'
    })
    t.notOk(event?.involvedObject?.namespace, 'a node is cluster-scoped: no namespace in the reference')
    t.match(event?.eventTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'eventTime is a MicroTime')
    t.match(event?.metadata?.name, new RegExp(`^${KWOK_NODE}\\.[0-9a-f]{16}$`), 'named NODE.HEX')

    const described = await cp.kubectl(['describe', 'node', KWOK_NODE])
    t.equal(described.code, 0, described.stderr)
    const section = described.stdout.slice(described.stdout.indexOf('\nEvents:'))
    t.match(section, /Warning\s+RemediationFailed\s+\S+\s+self-healing-controller\.io\/controller\s+drain-timeout: 1 pod left on the node/, 'kubectl describe node shows it')
  })

  await t.test('the node cache lists in pages and keeps lean nodes, the real API server\'s included', async t => {
    const mark = cp.readAuditEvents().length
    const cluster = await createKubeCluster(optionsFor(kc))
    t.teardown(() => cluster.close())
    const listed = (await cluster.listNodes()).find(n => n.metadata?.name === KWOK_NODE)!
    const full = await core.readNode({ name: KWOK_NODE })
    t.ok((full.metadata?.managedFields?.length ?? 0) > 0 && (full.status?.conditions?.length ?? 0) > 1, 'the API server\'s node has managedFields and several conditions')
    t.strictSame(listed.status?.conditions, [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }], 'the cached one only Ready')
    t.notOk(listed.metadata?.managedFields, 'and no managedFields')
    t.notOk(listed.metadata?.annotations?.['kwok.x-k8s.io/node'], 'nor annotations it was not told to keep')
    t.equal(listed.metadata?.uid, full.metadata?.uid)
    const lists = cp.readAuditEvents().slice(mark).filter(e => e.verb === 'list' && e.objectRef?.resource === 'nodes')
    t.ok(lists.length > 0 && lists.every(e => e.requestURI.includes('limit=500')), `listed with limit=500 (${lists.map(e => e.requestURI).join(', ')})`)
  })

  await t.test('waitForPodGone holds one watch of the node (no polling) and ends it after its last waiter', async t => {
    const cluster = await createKubeCluster(optionsFor(kc))
    t.teardown(() => cluster.close())
    const name = 'audit-held'
    const pod = await addPod({ name, node: IDLE_NODE, phase: 'Running', finalizers: ['example.com/hold'] })
    t.teardown(async () => {
      await core.patchNamespacedPod({ name, namespace: NS, body: { metadata: { finalizers: null } } }, mergePatch).catch(() => {})
      await core.deleteNamespacedPod({ name, namespace: NS, gracePeriodSeconds: 0 }).catch(() => {})
    })
    t.same(await cluster.evictPod(NS, name), { status: 'evicted' })
    const mark = cp.readAuditEvents().length
    const controller = new AbortController()
    const waiting = errorOf(cluster.waitForPodGone(pod, controller.signal))
    await new Promise(resolve => setTimeout(resolve, 3000))
    controller.abort(new Error('enough'))
    t.equal((await waiting as Error).message, 'enough')

    const about = () => cp.readAuditEvents().slice(mark).filter(e => e.objectRef?.resource === 'pods' && e.objectRef?.subresource === undefined && (e.requestURI.includes(name) || e.requestURI.includes(`spec.nodeName%3D${IDLE_NODE}`)))
    const ended = await eventually('the watch request to complete in the audit log', () => {
      const done = about().filter(e => e.verb === 'watch' && e.stage === 'ResponseComplete')
      return done.length > 0 && done
    }, 10_000, 200)
    const events = about()
    const watches = new Set(events.filter(e => e.verb === 'watch').map(e => e.auditID))
    const lists = new Set(events.filter(e => e.verb === 'list').map(e => e.auditID))
    t.equal(watches.size, 1, 'one watch request in 3 s')
    t.equal(lists.size, 1, 'one list of the node\'s pods, to start the watch from')
    t.same(events.filter(e => e.verb === 'get'), [], 'no read of the pod: it is in the list')
    t.match(ended[0]!.requestURI, /fieldSelector=spec\.nodeName%3D/, 'watching the node\'s pods, shared by every pod of a drain')
    t.match(ended[0]!.requestURI, /resourceVersion=\d+/, 'from the list\'s resourceVersion')
  })

  await t.test('a drain\'s pods share one list and one watch of their node, whatever their number', async t => {
    const cluster = await createKubeCluster(optionsFor(kc))
    t.teardown(() => cluster.close())
    const pods = []
    for (let i = 0; i < 6; i++) pods.push(await addPod({ name: `shared-${i}`, node: KWOK_NODE, phase: 'Running' }))
    const mark = cp.readAuditEvents().length
    const deadline = deadlineSignal(30_000)
    t.teardown(deadline.clear)
    // As the drain does: evict a few, wait for each, evict the next as one leaves.
    await forEachLimited(pods, 2, async pod => {
      t.same(await cluster.evictPod(NS, pod.metadata!.name!), { status: 'evicted' })
      await cluster.waitForPodGone(pod, deadline.signal)
    })
    const about = () => cp.readAuditEvents().slice(mark).filter(e => e.objectRef?.resource === 'pods' && e.objectRef?.subresource === undefined)
    const requests = (verb: string) => new Set(about().filter(e => e.verb === verb).map(e => e.auditID)).size
    await eventually('the watch request in the audit log', () => requests('watch') > 0, 10_000, 200)
    t.equal(requests('list'), 1, 'one list of the node\'s pods')
    t.equal(requests('watch'), 1, 'one watch of them')
    t.ok(requests('get') <= 2, `a read only for a pod gone before the list (${requests('get')})`)
  })

  await t.test('unavailable before the first sync; synced once the API server lets it list', async t => {
    t.equal((await cp.kubectl(['create', 'serviceaccount', 'shc-late'])).code, 0)
    const token = await cp.kubectl(['create', 'token', 'shc-late', '--duration=10m'])
    t.equal(token.code, 0, token.stderr)
    const file = cp.kubeconfigForToken(token.stdout.trim(), path.join(cp.dir, 'shc-late.kubeconfig'))
    const limited = new KubeConfig()
    limited.loadFromFile(file)
    const cluster = await createKubeCluster(optionsFor(limited))
    t.teardown(() => cluster.close())
    t.equal(cluster.synced(), false, 'not synced: listing nodes is forbidden')
    const err = await errorOf(cluster.listNodes())
    t.ok(isClusterError(err, 'unavailable'), `listNodes is unavailable (${String(err)})`)
    t.ok(isClusterError(await errorOf(cluster.getNode(KWOK_NODE)), 'invalid'), 'a fresh read is refused as invalid (403), not unavailable')

    t.equal((await cp.kubectl(['create', 'clusterrolebinding', 'shc-late', '--clusterrole=cluster-admin', '--serviceaccount=default:shc-late'])).code, 0)
    await eventually('the node cache to sync after its restarts', () => cluster.synced(), 20_000, 100)
    const nodes = await cluster.listNodes()
    t.ok(nodes.some(n => n.metadata?.name === KWOK_NODE), 'then listNodes answers from the cache')
  })

  await t.test('an unreachable API server: every call is unavailable, and createKubeCluster does not hang', async t => {
    const nowhere = new KubeConfig()
    nowhere.loadFromOptions({
      clusters: [{ name: 'nowhere', server: `https://127.0.0.1:${await closedPort()}`, skipTLSVerify: true }],
      users: [{ name: 'nobody', token: 'none' }],
      contexts: [{ name: 'nowhere', cluster: 'nowhere', user: 'nobody' }],
      currentContext: 'nowhere'
    })
    const started = Date.now()
    const cluster = await createKubeCluster(optionsFor(nowhere))
    t.teardown(() => cluster.close())
    t.ok(Date.now() - started < 5000, `resolved after the first failed attempt (${Date.now() - started} ms)`)
    t.equal(cluster.synced(), false)
    const node = { metadata: { name: 'x', uid: 'u' } }
    const pod: V1Pod = { metadata: { name: 'p', namespace: NS, uid: 'u' }, spec: { nodeName: 'x', containers: [] } }
    const calls: Array<[string, () => Promise<unknown>]> = [
      ['listNodes', () => cluster.listNodes()],
      ['getNode', () => cluster.getNode('x')],
      ['patchNode', () => cluster.patchNode('x', { unschedulable: true }, '1')],
      ['listPodsOnNode', () => cluster.listPodsOnNode('x')],
      ['evictPod', () => cluster.evictPod(NS, 'p')],
      ['deletePod', () => cluster.deletePod(NS, 'p')],
      ['recordEvent', () => cluster.recordEvent(nodeRef(node), { type: 'Normal', reason: 'R', action: 'a', note: 'n' })]
    ]
    for (const [name, call] of calls) {
      const err = await errorOf(call())
      t.ok(isClusterError(err, 'unavailable'), `${name}: ${String(err)}`)
    }
    const waited = await errorOf(cluster.waitForPodGone(pod, deadlineSignal(1500).signal))
    t.equal((waited as Error).name, 'TimeoutError', 'waitForPodGone keeps retrying until its signal aborts')
  })

  await t.test('a broken watch: the cache is refused after its grace period, then resyncs and catches up', async t => {
    const proxy = await startCuttableProxy(new URL(cp.server))
    t.teardown(() => proxy.close())
    const viaProxy = new KubeConfig()
    viaProxy.loadFromOptions({
      clusters: kc.getClusters().map(c => ({ ...c, server: proxy.url })),
      users: kc.getUsers(),
      contexts: kc.getContexts(),
      currentContext: kc.getCurrentContext()
    })
    const cluster = await createKubeCluster(optionsFor(viaProxy, { staleAfterMs: 2000 }))
    t.teardown(() => cluster.close())
    t.equal(cluster.synced(), true)
    await core.createNode({ body: plainNode('outage-doomed') })
    await eventually('the cache to list the new node', async () => (await cluster.listNodes()).some(n => n.metadata?.name === 'outage-doomed'), 10_000)
    const seen: string[] = []
    t.teardown(cluster.onNodeChange(node => { seen.push(node.metadata!.name!) }))

    await proxy.cut()
    const cutAt = Date.now()
    // Changes the controller cannot see while it is cut off.
    await core.patchNode({ name: IDLE_NODE, body: { metadata: { annotations: { 'example.com/outage': 'seen' } } } }, mergePatch)
    await core.deleteNode({ name: 'outage-doomed' })
    t.ok(isClusterError(await errorOf(cluster.getNode(IDLE_NODE)), 'unavailable'), 'a fresh read fails during the cut')
    await eventually('listNodes to refuse the stale cache', async () => isClusterError(await errorOf(cluster.listNodes()), 'unavailable'), 15_000, 100)
    t.ok(Date.now() - cutAt >= 1500, `refused only after the grace period (${Date.now() - cutAt} ms)`)

    await proxy.restore()
    const restoredAt = Date.now()
    await eventually('the node cache to resync', () => cluster.synced(), 40_000, 100)
    t.comment(`watch restarted ${Date.now() - restoredAt} ms after the network came back`)
    await eventually('the cache to catch up with the outage', async () => {
      const nodes = await cluster.listNodes()
      const idle = nodes.find(n => n.metadata?.name === IDLE_NODE)
      return idle?.metadata?.annotations?.['example.com/outage'] === 'seen' && !nodes.some(n => n.metadata?.name === 'outage-doomed')
    }, 10_000)
    t.pass('a change and a deletion made during the outage are in the cache')
    await eventually('notifications for both', () => seen.includes(IDLE_NODE) && seen.includes('outage-doomed'), 5000)
    t.pass('and listeners heard of both')
  })

  // Last: it stops the control plane.
  await t.test('the API server goes away: fresh calls fail at once, the cache is refused after its grace period', async t => {
    const cluster = await createKubeCluster(optionsFor(kc, { staleAfterMs: 4000 }))
    t.teardown(() => cluster.close())
    t.equal(cluster.synced(), true, 'synced on a live server')
    const node = (await cluster.getNode(KWOK_NODE))!
    const pod = await addPod({ name: 'outage-held', node: IDLE_NODE, phase: 'Running', finalizers: ['example.com/hold'] })

    await cp.stop()
    const stoppedAt = Date.now()
    t.ok((await cluster.listNodes()).some(n => n.metadata?.name === KWOK_NODE), 'the cache is still served within the grace period')
    const calls: Array<[string, () => Promise<unknown>]> = [
      ['getNode', () => cluster.getNode(KWOK_NODE)],
      ['patchNode', () => cluster.patchNode(KWOK_NODE, { unschedulable: true }, node.metadata!.resourceVersion)],
      ['listPodsOnNode', () => cluster.listPodsOnNode(KWOK_NODE)],
      ['evictPod', () => cluster.evictPod(NS, 'outage-held')],
      ['deletePod', () => cluster.deletePod(NS, 'outage-held')],
      ['recordEvent', () => cluster.recordEvent(nodeRef(node), { type: 'Normal', reason: 'R', action: 'a', note: 'n' })]
    ]
    for (const [name, call] of calls) {
      const err = await errorOf(call())
      t.ok(isClusterError(err, 'unavailable'), `${name}: ${String(err)}`)
    }
    const waited = await errorOf(cluster.waitForPodGone(pod, deadlineSignal(1000).signal))
    t.equal((waited as Error).name, 'TimeoutError', 'waitForPodGone waits out the outage until its signal aborts')

    await eventually('listNodes to refuse the stale cache', async () => isClusterError(await errorOf(cluster.listNodes()), 'unavailable'), 15_000, 100)
    const after = Date.now() - stoppedAt
    t.ok(after >= 3000, `not before the grace period (${after} ms after the stop)`)
    t.equal(cluster.synced(), false)
  })
})
