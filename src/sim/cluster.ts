import { EventEmitter } from 'node:events'
import type { V1Node, V1PersistentVolume, V1PersistentVolumeClaim, V1Pod, V1PodDisruptionBudget } from '@kubernetes/client-node'
import { ClusterError, mergeStrings, type Cluster, type ControllerState, type EvictionResult, type NodeEvent, type NodePatch, type ObjectRef } from '../cluster.ts'
import { simNodeInfo } from './topology.ts'

/**
 * An in-memory cluster with the API server's semantics where the engine depends on them:
 * resourceVersion conflicts, PodDisruptionBudgets answering 429, pods that take time to
 * terminate, finalizers that keep a pod Terminating, ReplicaSets that recreate evicted pods on
 * schedulable nodes. Timers are real but short; `close()` clears them.
 */
export type SimOptions = {
  /** How long an evicted pod stays Terminating before it is gone. */
  terminationDelayMs: number
  /** How long a replacement pod stays Pending before it runs. */
  startDelayMs: number
  /** Retry-After hint sent with a 429. */
  retryAfterMs: number
}

export type SimCluster = Cluster & {
  addNode (node: V1Node): void
  /** The node leaves the cluster (as the cloud deleting it); its pods are garbage-collected. */
  removeNode (name: string): void
  /** Someone else changes the node (an operator, another controller, the kubelet): stored under a new resourceVersion. */
  updateNode (name: string, change: (node: V1Node) => void): void
  addPod (pod: V1Pod): void
  addPodDisruptionBudget (pdb: V1PodDisruptionBudget): void
  /** Registers a ReplicaSet's desired replicas so evicted pods are recreated elsewhere. */
  addReplicaSet (namespace: string, name: string, replicas: number): void
  /** Registers another controller (StatefulSet, Job…) that owner references may name. */
  addController (namespace: string, kind: string, name: string): void
  /** The controller is deleted (its pods orphaned): what `controllerExists` then says. */
  removeController (namespace: string, kind: string, name: string): void
  addClaim (claim: V1PersistentVolumeClaim): void
  addVolume (volume: V1PersistentVolume): void
  pods (): V1Pod[]
  /** Events by the name of what they regard (a node, or the controller's Lease). */
  events: Array<{ node: string, event: NodeEvent }>
  /** Every mutating call, in order: what the dry-run tests count. */
  mutations: string[]
  /** Simulates an unreachable API server. */
  setReachable (reachable: boolean): void
  /** The cloud swapped the machine behind a node. */
  setProviderID (name: string, providerID: string): void
  /** The machine restarts: the node is NotReady for `downMs`, then Ready on a new boot. */
  rebootNode (name: string, downMs: number): void
  /** The stored state right now, synchronously: what a test checks an invariant against at the instant of a write. */
  now (): { nodes: readonly V1Node[], controllerState: ControllerState }
  /** Lets a stuck pod go, as an operator removing its finalizer would. */
  removeFinalizers (namespace: string, name: string): void
  close (): void
}

const finishedPhases = new Set(['Succeeded', 'Failed', 'Pending'])

/** Nodes are handed out as frozen snapshots, as an informer cache would be: reading is free, writing replaces. */
function frozen<T> (value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) frozen(inner)
    Object.freeze(value)
  }
  return value
}

function matches (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (selector === undefined) return false
  return Object.entries(selector).every(([key, value]) => labels?.[key] === value)
}

export function createSimCluster (options: SimOptions): SimCluster {
  const nodes = new Map<string, V1Node>()
  const pods = new Map<string, V1Pod>()
  const pdbs: V1PodDisruptionBudget[] = []
  const replicaSets = new Map<string, number>()
  const controllers = new Set<string>()
  const claims = new Map<string, V1PersistentVolumeClaim>()
  const volumes = new Map<string, V1PersistentVolume>()
  const emitter = new EventEmitter()
  emitter.setMaxListeners(0)
  const timers = new Set<NodeJS.Timeout>()
  const events: SimCluster['events'] = []
  const mutations: string[] = []
  let resourceVersion = 1
  let serial = 0
  let reachable = true
  let controllerState: ControllerState = { annotations: {}, version: '' }

  const key = (namespace: string, name: string) => `${namespace}/${name}`
  const later = (ms: number, fn: () => void) => {
    const timer = setTimeout(() => { timers.delete(timer); fn() }, ms)
    timers.add(timer)
  }
  const ensureReachable = () => {
    if (!reachable) throw new ClusterError('unavailable', 'simulated API server is unreachable')
  }
  // Rebuilt only after a change, like an informer's list: callers may cache by its identity.
  let listed: V1Node[] | undefined
  /** Stores a changed copy of a node under a new resourceVersion and tells the watchers. */
  const store = (node: V1Node): V1Node => {
    node.metadata!.resourceVersion = String(++resourceVersion)
    const saved = frozen(node)
    nodes.set(saved.metadata!.name!, saved)
    listed = undefined
    setImmediate(() => emitter.emit('node', saved, false))
    return saved
  }

  function healthy (pod: V1Pod): boolean {
    return pod.status?.phase === 'Running' && pod.metadata?.deletionTimestamp === undefined
  }

  function disruptionsAllowed (pdb: V1PodDisruptionBudget): number {
    const selector = pdb.spec?.selector?.matchLabels
    const covered = [...pods.values()].filter(p => p.metadata?.namespace === pdb.metadata?.namespace && matches(selector, p.metadata?.labels))
    const currentHealthy = covered.filter(healthy).length
    if (pdb.spec?.minAvailable !== undefined) return currentHealthy - Number(pdb.spec.minAvailable)
    const owners = new Set(covered.map(p => ownerKey(p)).filter(k => k !== undefined))
    const expected = [...owners].reduce((sum, owner) => sum + (replicaSets.get(owner) ?? 0), 0)
    return Number(pdb.spec?.maxUnavailable ?? 0) - (expected - currentHealthy)
  }

  function ownerKey (pod: V1Pod): string | undefined {
    const owner = pod.metadata?.ownerReferences?.find(o => o.kind === 'ReplicaSet')
    return owner === undefined ? undefined : key(pod.metadata!.namespace!, owner.name)
  }

  function leastLoadedSchedulableNode (): string | undefined {
    const load = new Map<string, number>()
    for (const node of nodes.values()) if (node.spec?.unschedulable !== true) load.set(node.metadata!.name!, 0)
    for (const pod of pods.values()) {
      const name = pod.spec?.nodeName
      if (name !== undefined && load.has(name)) load.set(name, load.get(name)! + 1)
    }
    return [...load.entries()].sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]))[0]?.[0]
  }

  function replace (gone: V1Pod) {
    const owner = ownerKey(gone)
    if (owner === undefined) return
    const ownerName = owner.split('/')[1]!
    const name = `${ownerName}-r${++serial}`
    const pod: V1Pod = {
      metadata: { ...structuredClone(gone.metadata!), name, uid: `sim-pod-${serial}`, deletionTimestamp: undefined, finalizers: undefined },
      spec: { ...structuredClone(gone.spec!), nodeName: leastLoadedSchedulableNode() },
      status: { phase: 'Pending' }
    }
    delete pod.metadata!.deletionTimestamp
    delete pod.metadata!.finalizers
    pods.set(key(pod.metadata!.namespace!, name), pod)
    if (pod.spec!.nodeName !== undefined) later(options.startDelayMs, () => { if (pods.get(key(pod.metadata!.namespace!, name)) === pod) pod.status = { phase: 'Running' } })
  }

  function finishDeletion (pod: V1Pod) {
    const k = key(pod.metadata!.namespace!, pod.metadata!.name!)
    if (pods.get(k) !== pod || (pod.metadata?.finalizers?.length ?? 0) > 0) return
    pods.delete(k)
    emitter.emit(`gone:${pod.metadata!.uid}`)
    replace(pod)
  }

  function beginDeletion (pod: V1Pod, delayMs: number) {
    if (pod.metadata!.deletionTimestamp === undefined) {
      pod.metadata!.deletionTimestamp = new Date()
      later(delayMs, () => finishDeletion(pod))
    } else if (delayMs === 0) {
      finishDeletion(pod)
    }
  }

  const findPod = (namespace: string, name: string) => pods.get(key(namespace, name))

  return {
    kind: 'simulated',
    async listNodes () {
      ensureReachable()
      return (listed ??= Object.freeze([...nodes.values()]) as V1Node[])
    },
    async getNode (name) {
      ensureReachable()
      return nodes.get(name)
    },
    async patchNode (name, patch: NodePatch, expectedVersion) {
      ensureReachable()
      const current = nodes.get(name)
      if (current === undefined) throw new ClusterError('not-found', `node ${name} not found`)
      if (expectedVersion !== undefined && current.metadata!.resourceVersion !== expectedVersion) {
        throw new ClusterError('conflict', `node ${name} was modified (resourceVersion ${current.metadata!.resourceVersion}, expected ${expectedVersion})`)
      }
      mutations.push(`patch node ${name}`)
      const node = structuredClone(current)
      node.metadata!.annotations = mergeStrings(node.metadata!.annotations, patch.annotations)
      if (patch.labels !== undefined) node.metadata!.labels = mergeStrings(node.metadata!.labels, patch.labels)
      if (patch.unschedulable !== undefined) node.spec = { ...node.spec, unschedulable: patch.unschedulable }
      return store(node)
    },
    async listPodsOnNode (name) {
      ensureReachable()
      return [...pods.values()].filter(p => p.spec?.nodeName === name).map(p => structuredClone(p))
    },
    async listAllPods () {
      ensureReachable()
      return [...pods.values()].map(p => structuredClone(p))
    },
    async controllerExists (namespace, owner) {
      ensureReachable()
      if (owner.kind === 'ReplicaSet') return replicaSets.has(key(namespace, owner.name)) ? 'exists' : 'gone'
      return controllers.has(`${owner.kind}/${key(namespace, owner.name)}`) ? 'exists' : 'gone'
    },
    async getClaim (namespace, name) {
      ensureReachable()
      const claim = claims.get(key(namespace, name))
      return claim === undefined ? undefined : structuredClone(claim)
    },
    async getVolume (name) {
      ensureReachable()
      const volume = volumes.get(name)
      return volume === undefined ? undefined : structuredClone(volume)
    },
    async listDisruptionBudgets (namespace) {
      ensureReachable()
      return pdbs.filter(b => b.metadata?.namespace === namespace).map(b => structuredClone(b))
    },
    async evictPod (namespace, name): Promise<EvictionResult> {
      ensureReachable()
      const pod = findPod(namespace, name)
      if (pod === undefined) return { status: 'gone' }
      mutations.push(`evict pod ${namespace}/${name}`)
      // As the API server: pods already deleting, finished or pending skip the budget check.
      if (pod.metadata!.deletionTimestamp !== undefined || finishedPhases.has(pod.status?.phase ?? '')) {
        beginDeletion(pod, options.terminationDelayMs)
        return { status: 'evicted' }
      }
      const covering = pdbs.filter(b => b.metadata?.namespace === namespace && matches(b.spec?.selector?.matchLabels, pod.metadata?.labels))
      if (covering.length > 1) throw new ClusterError('invalid', `pod ${namespace}/${name} has more than one PodDisruptionBudget`)
      if (covering.length === 1 && disruptionsAllowed(covering[0]!) <= 0) {
        return { status: 'blocked', message: 'Cannot evict pod as it would violate the pod\'s disruption budget.', retryAfterMs: options.retryAfterMs }
      }
      beginDeletion(pod, options.terminationDelayMs)
      return { status: 'evicted' }
    },
    async deletePod (namespace, name, gracePeriodSeconds) {
      ensureReachable()
      const pod = findPod(namespace, name)
      if (pod === undefined) return
      mutations.push(`delete pod ${namespace}/${name}`)
      beginDeletion(pod, gracePeriodSeconds === 0 ? 0 : options.terminationDelayMs)
    },
    waitForPodGone (pod, signal) {
      const uid = pod.metadata!.uid!
      const present = [...pods.values()].some(p => p.metadata?.uid === uid)
      if (!present) return Promise.resolve()
      return new Promise<void>((resolve, reject) => {
        const done = () => { signal.removeEventListener('abort', aborted); resolve() }
        const aborted = () => { emitter.off(`gone:${uid}`, done); reject(signal.reason) }
        if (signal.aborted) { reject(signal.reason); return }
        emitter.once(`gone:${uid}`, done)
        signal.addEventListener('abort', aborted, { once: true })
      })
    },
    async recordEvent (regarding: ObjectRef, event) {
      ensureReachable()
      mutations.push(`event ${regarding.name} ${event.reason}`)
      events.push({ node: regarding.name, event })
    },
    async readControllerState () {
      ensureReachable()
      return controllerState
    },
    async writeControllerState (patch, version) {
      ensureReachable()
      if (version !== controllerState.version) throw new ClusterError('conflict', `controller state was modified (version ${controllerState.version || 'none'}, expected ${version || 'none'})`)
      mutations.push('write controller state')
      const annotations = mergeStrings(controllerState.annotations, patch)
      controllerState = Object.freeze({ annotations: Object.freeze(annotations), version: String(++resourceVersion) })
      return controllerState
    },
    onNodeChange (listener) {
      emitter.on('node', listener)
      return () => { emitter.off('node', listener) }
    },
    addNode (node) {
      store(structuredClone(node))
    },
    removeNode (name) {
      listed = undefined
      const gone = nodes.get(name)
      if (gone === undefined) return
      nodes.delete(name)
      // As the pod garbage collector: pods bound to a node that no longer exists are deleted.
      for (const pod of [...pods.values()]) if (pod.spec?.nodeName === name) { pod.metadata!.deletionTimestamp ??= new Date(); finishDeletion(pod) }
      // As an informer's delete handler: watchers get the node's last state.
      setImmediate(() => emitter.emit('node', gone, true))
    },
    updateNode (name, change) {
      const current = nodes.get(name)
      if (current === undefined) return
      const node = structuredClone(current)
      change(node)
      store(node)
    },
    addPod (pod) {
      const copy = structuredClone(pod)
      copy.metadata!.uid ??= `sim-pod-${++serial}`
      pods.set(key(copy.metadata!.namespace!, copy.metadata!.name!), copy)
    },
    addPodDisruptionBudget (pdb) {
      pdbs.push(structuredClone(pdb))
    },
    addReplicaSet (namespace, name, replicas) {
      replicaSets.set(key(namespace, name), replicas)
    },
    addController (namespace, kind, name) {
      controllers.add(`${kind}/${key(namespace, name)}`)
    },
    removeController (namespace, kind, name) {
      if (kind === 'ReplicaSet') replicaSets.delete(key(namespace, name))
      controllers.delete(`${kind}/${key(namespace, name)}`)
    },
    addClaim (claim) {
      claims.set(key(claim.metadata!.namespace!, claim.metadata!.name!), structuredClone(claim))
    },
    addVolume (volume) {
      volumes.set(volume.metadata!.name!, structuredClone(volume))
    },
    pods () {
      return [...pods.values()].map(p => structuredClone(p))
    },
    events,
    mutations,
    setReachable (value) {
      reachable = value
    },
    setProviderID (name, providerID) {
      this.updateNode(name, node => { node.spec = { ...node.spec, providerID } })
    },
    rebootNode (name, downMs) {
      const setStatus = (ready: boolean, bootID?: string) => this.updateNode(name, node => {
        const info = node.status?.nodeInfo ?? simNodeInfo('')
        node.status = {
          ...node.status,
          conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', reason: ready ? 'KubeletReady' : 'KubeletNotReady' }],
          nodeInfo: { ...info, bootID: bootID ?? info.bootID }
        }
      })
      setStatus(false)
      later(downMs, () => setStatus(true, `${name}-boot-${++serial}`))
    },
    now () {
      return { nodes: (listed ??= Object.freeze([...nodes.values()]) as V1Node[]), controllerState }
    },
    removeFinalizers (namespace, name) {
      const pod = findPod(namespace, name)
      if (pod === undefined) return
      delete pod.metadata!.finalizers
      if (pod.metadata!.deletionTimestamp !== undefined) finishDeletion(pod)
    },
    close () {
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      emitter.removeAllListeners()
    }
  }
}
