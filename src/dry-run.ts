import type { V1Node, V1Pod } from '@kubernetes/client-node'
import type { Logger } from 'pino'
import { ClusterError, mergeStrings, type Cluster, type ControllerState } from './cluster.ts'
import type { Provider } from './providers/provider.ts'

/**
 * DRY_RUN: the same engine, reconcile passes included, on a shadow of the cluster. Reads go to
 * the real cluster; what the engine would have written (records, cordons, the fleet state) is
 * kept in memory and laid over what it reads, and evictions and Events are only logged. So the
 * semaphore, the breaker, spacing and duplicate detection all see earlier decisions, and the
 * answers and GET /v1/nodes show what a real run would do — while the cluster sees no write.
 */
export function createShadowCluster (real: Cluster, log: Logger): Cluster {
  // What we would have written, per node: our annotations and the cordon, laid over the real node's latest version.
  const patches = new Map<string, { annotations: Record<string, string | null>, labels: Record<string, string | null>, unschedulable?: boolean, writes: number }>()
  const evicted = new Set<string>()
  let version = 0
  let state: ControllerState | undefined

  const shadowed = (node: V1Node): V1Node => {
    const own = patches.get(node.metadata!.name!)
    if (own === undefined) return node
    const copy = structuredClone(node)
    copy.metadata!.annotations = mergeStrings(copy.metadata!.annotations, own.annotations)
    copy.metadata!.labels = mergeStrings(copy.metadata!.labels, own.labels)
    if (own.unschedulable !== undefined) copy.spec = { ...copy.spec, unschedulable: own.unschedulable }
    copy.metadata!.resourceVersion = `${node.metadata?.resourceVersion}-shadow-${own.writes}`
    return copy
  }

  const podKey = (pod: { metadata?: { namespace?: string, name?: string } }) => `${pod.metadata?.namespace}/${pod.metadata?.name}`

  return {
    kind: real.kind,
    async listNodes () {
      return (await real.listNodes()).map(shadowed)
    },
    async getNode (name) {
      const node = await real.getNode(name)
      return node === undefined ? undefined : shadowed(node)
    },
    async patchNode (name, patch, resourceVersion) {
      const current = await this.getNode(name)
      if (current === undefined) throw new ClusterError('not-found', `node ${name} not found`)
      if (resourceVersion !== undefined && current.metadata?.resourceVersion !== resourceVersion) throw new ClusterError('conflict', `node ${name} was modified`)
      const own = patches.get(name) ?? { annotations: {}, labels: {}, writes: 0 }
      const next = { annotations: { ...own.annotations, ...patch.annotations }, labels: { ...own.labels, ...patch.labels }, unschedulable: patch.unschedulable ?? own.unschedulable, writes: own.writes + 1 }
      patches.set(name, next)
      const patched = shadowed((await real.getNode(name))!)
      log.info({ node: name, unschedulable: patch.unschedulable }, `dry run: would patch node ${name}`)
      // No change event for our own write: the engine takes it from this answer, and a late
      // event of an older shadow version would only take it back.
      return patched
    },
    async listPodsOnNode (name) {
      return (await real.listPodsOnNode(name)).filter(pod => !evicted.has(podKey(pod)))
    },
    listAllPods: () => real.listAllPods(),
    controllerExists: (namespace, owner) => real.controllerExists(namespace, owner),
    getClaim: (namespace, name) => real.getClaim(namespace, name),
    getVolume: name => real.getVolume(name),
    listDisruptionBudgets: namespace => real.listDisruptionBudgets(namespace),
    async evictPod (namespace, name) {
      log.info({ pod: `${namespace}/${name}` }, `dry run: would evict ${namespace}/${name}`)
      evicted.add(`${namespace}/${name}`)
      return { status: 'evicted' }
    },
    async deletePod (namespace, name) {
      log.info({ pod: `${namespace}/${name}` }, `dry run: would delete ${namespace}/${name}`)
      evicted.add(`${namespace}/${name}`)
    },
    async waitForPodGone (pod: V1Pod) {
      if (!evicted.has(podKey(pod))) throw new Error(`dry run: ${podKey(pod)} was not evicted`)
    },
    async recordEvent (regarding, event) {
      log.info({ regarding, event }, `dry run: would record event ${event.reason} on ${regarding.kind} ${regarding.name}`)
    },
    onNodeChange (listener) {
      return real.onNodeChange((node, deleted) => { listener(deleted ? node : shadowed(node), deleted) })
    },
    async readControllerState () {
      return state ?? await real.readControllerState()
    },
    async writeControllerState (patch, expected) {
      const current = await this.readControllerState()
      if (current.version !== expected) throw new ClusterError('conflict', 'controller state was modified')
      const annotations: Record<string, string> = { ...current.annotations }
      for (const [k, v] of Object.entries(patch)) {
        if (v === null) delete annotations[k]
        else annotations[k] = v
      }
      state = { annotations, version: `shadow-${++version}` }
      log.info({ patch }, 'dry run: would write the fleet state')
      return state
    }
  }
}

/** The provider of a dry run: says what it would ask for, does nothing, and never counts as a fix. */
export const dryRunProvider = (provider: Provider): Provider => ({
  name: `${provider.name} (dry run)`,
  async remediate (request) {
    return { detail: `dry run: would ask ${provider.name} to ${request.action} the machine behind ${request.node.metadata?.name}`, outcome: 'not-performed' }
  }
})
