import { randomUUID } from 'node:crypto'
import {
  ApiException,
  AppsV1Api,
  BatchV1Api,
  CoordinationV1Api,
  CoreV1Api,
  EventsV1Api,
  PolicyV1Api,
  PatchStrategy,
  V1MicroTime,
  setHeaderOptions,
  type KubeConfig,
  type V1Container,
  type V1Node,
  type V1Pod
} from '@kubernetes/client-node'
import type { Logger } from 'pino'
import { ClusterError, mergeStrings, type Cluster, type ControllerState, type EvictionResult, type NodePatch, type ObjectRef } from '../cluster.ts'
import { createRateLimiter } from '../concurrency.ts'
import { retryAfterMsOf, statusOf, toClusterError } from './errors.ts'
import { keptAnnotations } from './lean-node.ts'
import { createNodeCache } from './node-cache.ts'
import { createPodGoneWaiter } from './pod-gone.ts'

/**
 * The Cluster seam on a real API server, with @kubernetes/client-node 2.x: nodes from a watch
 * cache, fresh reads and optimistic-concurrency merge patches for read-modify-write, pods through
 * the policy/v1 Eviction API, deletion awaited through a watch, events.k8s.io/v1 Events.
 */
export type KubeClusterOptions = {
  kubeConfig: KubeConfig
  /** events.k8s.io reportingController, e.g. `self-healing-controller.io/controller`. */
  reportingController: string
  /** events.k8s.io reportingInstance: this replica (pod name). */
  reportingInstance: string
  log: Logger
  /** Namespace the Events go to; `default` is where node events live (kubelet's too). */
  eventNamespace?: string
  /** How long a broken node watch may serve its last state before listNodes says 'unavailable'. Default 30 s. */
  staleAfterMs?: number
  /** Bound on the wait for the first sync in createKubeCluster. Default 10 s; sync goes on after it. */
  firstSyncTimeoutMs?: number
  /**
   * Which Node annotations the node cache keeps; the rest are dropped on ingest. Default: ours
   * under the default prefix `self-healing-controller.io/` and the opt-outs (keptAnnotations).
   */
  keepAnnotation?: (key: string) => boolean
  /** The Lease whose annotations hold the controller's fleet-wide state (the leader-election Lease). */
  stateLease?: { namespace: string, name: string }
  /** Client-side limit on writes (patches, evictions, deletions, Events, the Lease), as client-go's QPS and burst. */
  writeLimit?: { perSecond: number, burst: number }
}

export type KubeCluster = Cluster & {
  /** True while the node cache reflects the cluster (synced once, watch not broken for long). */
  synced (): boolean
  /** Stops the node watch and ends pod waits in progress. */
  close (): void
}

// Merge patch (RFC 7386): null deletes a key, and a metadata.resourceVersion in the body is a
// precondition the API server enforces with 409. client-node defaults to JSON Patch otherwise.
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch)

// The one 500 that is not the server's fault: a pod covered by several budgets is never evictable.
const SEVERAL_BUDGETS = /more than one PodDisruptionBudget/i

function delay (ms: number): { promise: Promise<void>, clear: () => void } {
  let timer: NodeJS.Timeout | undefined
  const promise = new Promise<void>(resolve => { timer = setTimeout(resolve, ms) })
  return { promise, clear: () => clearTimeout(timer) }
}

/** What the capacity check reads of a pod: where it runs, whether it still counts, what it requests. */
function leanPod (pod: V1Pod): V1Pod {
  const requests = (containers: V1Container[] | undefined) => containers?.map(c => ({ name: c.name, resources: { requests: c.resources?.requests ?? {} } }))
  return {
    metadata: { name: pod.metadata?.name, namespace: pod.metadata?.namespace },
    spec: {
      nodeName: pod.spec?.nodeName,
      containers: requests(pod.spec?.containers) ?? [],
      ...(pod.spec?.initContainers === undefined ? {} : { initContainers: requests(pod.spec.initContainers) }),
      ...(pod.spec?.overhead === undefined ? {} : { overhead: pod.spec.overhead })
    },
    status: { phase: pod.status?.phase }
  }
}

/** Starts the node watch and resolves once it synced, its first attempt failed, or `firstSyncTimeoutMs` passed. */
export async function createKubeCluster (options: KubeClusterOptions): Promise<KubeCluster> {
  const { kubeConfig, log } = options
  const eventNamespace = options.eventNamespace ?? 'default'
  const core = kubeConfig.makeApiClient(CoreV1Api)
  const events = kubeConfig.makeApiClient(EventsV1Api)
  const leases = kubeConfig.makeApiClient(CoordinationV1Api)
  const apps = kubeConfig.makeApiClient(AppsV1Api)
  const batch = kubeConfig.makeApiClient(BatchV1Api)
  const policy = kubeConfig.makeApiClient(PolicyV1Api)
  const stateLease = options.stateLease ?? { namespace: 'self-healing-controller', name: 'self-healing-controller' }
  const nodes = createNodeCache({
    kubeConfig,
    log,
    staleAfterMs: options.staleAfterMs ?? 30_000,
    keepAnnotation: options.keepAnnotation ?? keptAnnotations('self-healing-controller.io')
  })
  const podGone = createPodGoneWaiter(kubeConfig, log)

  /** A read that answers undefined for 404 and a ClusterError for anything else. */
  const readOrUndefined = async <T>(what: string, fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await fn()
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined
      throw toClusterError(err, what)
    }
  }

  const readLease = async () => {
    try {
      return await leases.readNamespacedLease(stateLease)
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined
      throw toClusterError(err, `read lease ${stateLease.namespace}/${stateLease.name}`)
    }
  }

  // Throws what the engine can act on: ClusterError for API and network failures.
  const call = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn()
    } catch (err) {
      throw toClusterError(err, what)
    }
  }
  // A storm's writes go out at a pace the API server absorbs: no flood, no push-back from API
  // priority and fairness, and the Lease renewals (not limited) are never starved.
  const writeLimiter = options.writeLimit === undefined ? undefined : createRateLimiter(options.writeLimit.perSecond, options.writeLimit.burst)
  const write = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    await writeLimiter?.acquire()
    return await call(what, fn)
  }

  const cluster: KubeCluster = {
    kind: 'kubernetes',
    async listNodes () {
      if (!nodes.synced()) throw new ClusterError('unavailable', `list nodes: ${nodes.state()}`)
      return nodes.list()
    },
    async getNode (name) {
      try {
        return await core.readNode({ name })
      } catch (err) {
        if (err instanceof ApiException && err.code === 404) return undefined
        throw toClusterError(err, `get node ${name}`)
      }
    },
    async patchNode (name, patch: NodePatch, resourceVersion) {
      const metadata: Record<string, unknown> = {}
      if (resourceVersion !== undefined) metadata.resourceVersion = resourceVersion
      if (patch.annotations !== undefined) metadata.annotations = patch.annotations
      if (patch.labels !== undefined) metadata.labels = patch.labels
      const body: Record<string, unknown> = { metadata }
      if (patch.unschedulable !== undefined) body.spec = { unschedulable: patch.unschedulable }
      const patched = await write(`patch node ${name}`, () => core.patchNode({ name, body }, mergePatch))
      nodes.remember(patched)
      return patched
    },
    async listPodsOnNode (name) {
      const pods = await call(`list pods on node ${name}`, () => core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${name}` }))
      return pods.items
    },
    async listAllPods () {
      // Pages of 500, kept lean at once: 50,000 full pods would be hundreds of MB for a few numbers each.
      const lean: V1Pod[] = []
      let next: string | undefined
      do {
        const page = await call('list pods', () => core.listPodForAllNamespaces(next === undefined ? { limit: 500 } : { limit: 500, _continue: next }))
        for (const pod of page.items) lean.push(leanPod(pod))
        next = page.metadata?._continue || undefined
      } while (next !== undefined)
      return lean
    },
    async controllerExists (namespace, owner) {
      const name = owner.name
      const read = (): Promise<{ metadata?: { uid?: string } } | undefined> | undefined => {
        const what = `read ${owner.kind} ${namespace}/${name}`
        switch (`${owner.apiVersion.split('/')[0]}/${owner.kind}`) {
          case 'apps/ReplicaSet': return readOrUndefined(what, () => apps.readNamespacedReplicaSet({ name, namespace }))
          case 'apps/StatefulSet': return readOrUndefined(what, () => apps.readNamespacedStatefulSet({ name, namespace }))
          case 'apps/DaemonSet': return readOrUndefined(what, () => apps.readNamespacedDaemonSet({ name, namespace }))
          case 'batch/Job': return readOrUndefined(what, () => batch.readNamespacedJob({ name, namespace }))
          case 'v1/ReplicationController': return readOrUndefined(what, () => core.readNamespacedReplicationController({ name, namespace }))
          default: return undefined
        }
      }
      const lookup = read()
      if (lookup === undefined) return 'unknown'
      const found = await lookup
      // A new object of the same name is not the controller that made this pod.
      return found !== undefined && (owner.uid === undefined || found.metadata?.uid === owner.uid) ? 'exists' : 'gone'
    },
    getClaim: (namespace, name) => readOrUndefined(`read persistentvolumeclaim ${namespace}/${name}`, () => core.readNamespacedPersistentVolumeClaim({ name, namespace })),
    getVolume: name => readOrUndefined(`read persistentvolume ${name}`, () => core.readPersistentVolume({ name })),
    async listDisruptionBudgets (namespace) {
      return (await call(`list poddisruptionbudgets in ${namespace}`, () => policy.listNamespacedPodDisruptionBudget({ namespace }))).items
    },
    async evictPod (namespace, name): Promise<EvictionResult> {
      const body = { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace } }
      await writeLimiter?.acquire()
      try {
        await core.createNamespacedPodEviction({ name, namespace, body })
        return { status: 'evicted' }
      } catch (err) {
        if (err instanceof ApiException && err.code === 404) return { status: 'gone' }
        if (err instanceof ApiException && err.code === 429) {
          const retryAfterMs = retryAfterMsOf(err)
          const message = statusOf(err)?.message ?? 'eviction refused (429)'
          return retryAfterMs === undefined ? { status: 'blocked', message } : { status: 'blocked', message, retryAfterMs }
        }
        const what = `evict pod ${namespace}/${name}`
        if (err instanceof ApiException && SEVERAL_BUDGETS.test(statusOf(err)?.message ?? '')) {
          throw new ClusterError('invalid', `${what}: ${statusOf(err)!.message}`, { cause: err })
        }
        throw toClusterError(err, what)
      }
    },
    async deletePod (namespace, name, gracePeriodSeconds) {
      await writeLimiter?.acquire()
      try {
        await core.deleteNamespacedPod(gracePeriodSeconds === undefined ? { name, namespace } : { name, namespace, gracePeriodSeconds })
      } catch (err) {
        // Already gone is what was asked for.
        if (err instanceof ApiException && err.code === 404) return
        throw toClusterError(err, `delete pod ${namespace}/${name}`)
      }
    },
    waitForPodGone (pod, signal) {
      return podGone.wait(pod, signal)
    },
    async recordEvent (regarding: ObjectRef, event) {
      // Nodes are cluster-scoped: their Events live in `default` (as the kubelet's), with no
      // namespace in `regarding`, or `kubectl describe node` misses them. Lease Events live with the Lease.
      const namespace = regarding.kind === 'Node' ? eventNamespace : regarding.namespace
      const ref = regarding.kind === 'Node'
        ? { apiVersion: 'v1', kind: 'Node', name: regarding.name }
        : { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', name: regarding.name, namespace: regarding.namespace }
      // Unique without coordination between replicas; client-go uses NAME.HEXTIME the same way.
      const suffix = randomUUID().replaceAll('-', '').slice(0, 16)
      await write(`record event ${event.reason} on ${regarding.kind.toLowerCase()} ${regarding.name}`, () => events.createNamespacedEvent({
        namespace,
        body: {
          apiVersion: 'events.k8s.io/v1',
          kind: 'Event',
          metadata: { name: `${regarding.name}.${suffix}`, namespace },
          regarding: { ...ref, ...(regarding.uid === undefined ? {} : { uid: regarding.uid }) },
          eventTime: new V1MicroTime(),
          type: event.type,
          reason: event.reason,
          action: event.action,
          note: event.note,
          reportingController: options.reportingController,
          reportingInstance: options.reportingInstance
        }
      }))
    },
    onNodeChange (listener: (node: V1Node, deleted: boolean) => void) {
      return nodes.onChange(listener)
    },
    async readControllerState (): Promise<ControllerState> {
      const lease = await readLease()
      return lease === undefined ? { annotations: {}, version: '' } : { annotations: lease.metadata?.annotations ?? {}, version: lease.metadata!.resourceVersion! }
    },
    async writeControllerState (patch, version): Promise<ControllerState> {
      const what = `write controller state on lease ${stateLease.namespace}/${stateLease.name}`
      const lease = await readLease()
      if ((lease?.metadata?.resourceVersion ?? '') !== version) throw new ClusterError('conflict', `${what}: it changed (resourceVersion ${lease?.metadata?.resourceVersion ?? 'none'}, expected ${version || 'none'})`)
      const annotations = mergeStrings(lease?.metadata?.annotations, patch)
      // An update carrying the resourceVersion we read: a concurrent writer (the elector renewing,
      // another replica) makes it fail with 409 rather than be overwritten. The Role allows only
      // get and update on this one Lease (and create, for the first replica).
      const written = lease === undefined
        ? await write(what, () => leases.createNamespacedLease({ namespace: stateLease.namespace, body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: stateLease.name, namespace: stateLease.namespace, annotations }, spec: {} } }))
        : await write(what, () => leases.replaceNamespacedLease({ name: stateLease.name, namespace: stateLease.namespace, body: { ...lease, metadata: { ...lease.metadata, annotations } } }))
      return { annotations: written.metadata?.annotations ?? {}, version: written.metadata!.resourceVersion! }
    },
    synced: () => nodes.synced(),
    close () {
      nodes.close()
      podGone.close()
    }
  }

  const bound = delay(options.firstSyncTimeoutMs ?? 10_000)
  await Promise.race([nodes.start(), bound.promise])
  bound.clear()
  if (!nodes.synced()) log.warn({ state: nodes.state() }, 'node cache not synced yet; listNodes answers unavailable until it is')
  return cluster
}
