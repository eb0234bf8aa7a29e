import type { V1Node } from '@kubernetes/client-node'
import type { Logger } from 'pino'
import { isClusterError, type Cluster, type NodeEvent, type NodePatch } from '../cluster.ts'
import type { Metrics } from '../metrics.ts'
import type { PolicyConfig } from '../policy/config.ts'
import { decodeRecord, encodeRecord, type NodeRecord } from './record.ts'
import type { NodeView, Snapshot } from './snapshot.ts'
import type { Change } from './transitions.ts'

/**
 * The persisted side of remediation: reads nodes into views, and writes each change on its Node
 * (one merge patch, optimistic concurrency) before anything acts on it — then tells the operator
 * through a log line, a metric and a Kubernetes Event.
 */
export type NodeStore = ReturnType<typeof createNodeStore>

export function createNodeStore (deps: { cluster: Cluster, annotationPrefix: string, policy: PolicyConfig, metrics: Metrics, log: Logger }) {
  const { cluster, policy, metrics, log } = deps
  const stateKey = `${deps.annotationPrefix}/state`
  const phaseKey = `${deps.annotationPrefix}/phase`

  // Node objects are immutable snapshots (informer cache, simulated store): a view per object suffices.
  const views = new WeakMap<V1Node, NodeView>()
  function toView (node: V1Node): NodeView {
    let view = views.get(node)
    if (view === undefined) {
      view = readView(node)
      views.set(node, view)
    }
    return view
  }

  // The clusters hand out the same list until a node changes: the snapshot built from it is reused.
  const snapshots = new WeakMap<readonly V1Node[], Snapshot>()

  function readView (node: V1Node): NodeView {
    const labels = node.metadata?.labels ?? {}
    const { record, error } = decodeRecord(node.metadata?.annotations?.[stateKey])
    return {
      name: node.metadata!.name!,
      pool: labels[policy.poolLabel] ?? '',
      zone: labels[policy.zoneLabel] ?? '',
      unschedulable: node.spec?.unschedulable === true,
      providerID: node.spec?.providerID,
      bootID: node.status?.nodeInfo?.bootID,
      ready: node.status?.conditions?.some(condition => condition.type === 'Ready' && condition.status === 'True') === true,
      record,
      recordError: error
    }
  }

  function patchOf (change: Change): NodePatch {
    const patch: NodePatch = { annotations: { [stateKey]: encodeRecord(change.record), [phaseKey]: change.record.phase } }
    if (change.unschedulable !== undefined) patch.unschedulable = change.unschedulable
    return patch
  }

  async function announce (node: V1Node, before: NodeRecord | undefined, after: NodeRecord) {
    const name = node.metadata!.name!
    let event: NodeEvent | undefined
    if (before?.phase !== after.phase) {
      metrics.transitions.inc({ from: before?.phase ?? 'healthy', to: after.phase })
      log.info({ node: name, from: before?.phase ?? 'healthy', to: after.phase, reason: after.reason, outcome: after.outcome }, `node ${name} ${after.phase}`)
      const title = after.phase[0]!.toUpperCase() + after.phase.slice(1)
      event = { type: after.phase === 'failed' ? 'Warning' : 'Normal', reason: `Remediation${title}`, action: after.phase, note: after.reason }
    } else if (after.deferred !== undefined && after.deferred.reason !== before?.deferred?.reason) {
      metrics.blocked.inc({ rule: after.deferred.rule })
      log.info({ node: name, rule: after.deferred.rule, reason: after.deferred.reason }, `node ${name} deferred`)
      event = { type: 'Normal', reason: 'RemediationDeferred', action: 'defer', note: after.deferred.reason }
    }
    if (event === undefined) return
    // An Event is an explanation, not state: failing to write one must not stop the remediation.
    await cluster.recordEvent(node, { ...event, note: event.note.slice(0, 1000) }).catch(err => log.warn({ err, node: name }, 'could not record event'))
  }

  return {
    toView,

    async snapshot (): Promise<Snapshot> {
      const nodes = await cluster.listNodes()
      let snapshot = snapshots.get(nodes)
      if (snapshot === undefined) {
        snapshot = new Map(nodes.map(node => [node.metadata!.name!, toView(node)]))
        snapshots.set(nodes, snapshot)
      }
      return snapshot
    },

    async view (name: string): Promise<{ node: V1Node, view: NodeView } | undefined> {
      const node = await cluster.getNode(name)
      return node === undefined ? undefined : { node, view: toView(node) }
    },

    /**
     * Read-modify-write of one node's record: `decide` sees the fresh node and returns the change
     * (or nothing); a conflicting writer makes it run again on the newer node.
     */
    async persist (name: string, decide: (view: NodeView) => Change | undefined): Promise<NodeView | undefined> {
      for (let attempt = 1; attempt <= 5; attempt++) {
        const node = await cluster.getNode(name)
        if (node === undefined) return undefined
        const view = toView(node)
        const change = decide(view)
        if (change === undefined) return view
        try {
          const patched = await cluster.patchNode(name, patchOf(change), node.metadata!.resourceVersion)
          await announce(patched, view.record, change.record)
          return toView(patched)
        } catch (err) {
          if (!isClusterError(err, 'conflict')) throw err
          log.debug({ node: name, attempt }, 'node changed while writing; retrying')
        }
      }
      throw new Error(`node ${name}: gave up after 5 conflicting writes`)
    }
  }
}
