import type { V1Node } from '@kubernetes/client-node'
import type { Logger } from 'pino'
import { ClusterError, isClusterError, type Cluster, type ControllerState, type NodeEvent, type NodePatch, type ObjectRef } from '../cluster.ts'
import { forEachLimited } from '../concurrency.ts'
import type { Metrics } from '../metrics.ts'
import type { PolicyConfig } from '../policy/config.ts'
import { parseQuantity } from '../quantity.ts'
import { parseTime } from '../time.ts'
import { decodeFleetState, emptyFleetState, fleetStatePatch, type FleetState } from './fleet-state.ts'
import { decodeRecord, encodeRecord, type NodeRecord } from './record.ts'
import type { NodeView, Taint } from './snapshot.ts'
import type { Change } from './transitions.ts'

/**
 * The persisted side of remediation: reads nodes into views, and writes each change on its Node
 * (one merge patch, optimistic concurrency) before anything acts on it — then tells the operator
 * through a log line, a metric and a Kubernetes Event.
 */
export type NodeStore = ReturnType<typeof createNodeStore>

/** Thrown instead of writing when this replica may no longer act (not the leader, lease in doubt). */
export class FencedError extends Error {
  constructor (what: string) {
    super(`not writing (${what}): this replica is not the leader, or its lease may have expired`)
    this.name = 'FencedError'
  }
}

/** Node annotations other tools set to say "leave this node alone". */
export const nodeOptOuts = { karpenter: 'karpenter.sh/do-not-disrupt' } as const

export type StoreDeps = {
  cluster: Cluster
  annotationPrefix: string
  policy: PolicyConfig
  metrics: Metrics
  log: Logger
}

const sameTaints = (a: readonly Taint[], b: readonly Taint[]) => a.length === b.length && a.every((t, i) => t.key === b[i]!.key && t.effect === b[i]!.effect && t.value === b[i]!.value)
function sameLabels (a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a)
  if (keys.length !== Object.keys(b).length) return false
  for (const key of keys) if (a[key] !== b[key]) return false
  return true
}

/**
 * Whether two views of a node differ in anything a rule reads. Heartbeats, image lists and other
 * status churn produce equal views: such a change queues nothing.
 */
export function sameView (a: NodeView, b: NodeView): boolean {
  return a.uid === b.uid && a.pool === b.pool && a.zone === b.zone && a.unschedulable === b.unschedulable &&
    a.providerID === b.providerID && a.bootID === b.bootID && a.ready === b.ready && a.deleting === b.deleting &&
    a.record === b.record && a.recordError === b.recordError && a.veto?.reason === b.veto?.reason && a.veto?.until === b.veto?.until &&
    a.allocatable.cpu === b.allocatable.cpu && a.allocatable.memory === b.allocatable.memory && a.allocatable.pods === b.allocatable.pods &&
    sameTaints(a.taints, b.taints) && sameLabels(a.labels, b.labels)
}

export function createNodeStore (deps: StoreDeps) {
  const { cluster, policy, metrics, log } = deps
  const stateKey = `${deps.annotationPrefix}/state`
  const phaseKey = `${deps.annotationPrefix}/phase`
  const vetoKey = `${deps.annotationPrefix}/veto`
  const vetoUntilKey = `${deps.annotationPrefix}/veto-until`

  // The same annotation text decodes to the same record object, so views compare records by identity.
  const decoded = new Map<string, { text: string, record?: NodeRecord, error?: string }>()
  function recordOf (name: string, text: string | undefined): { record?: NodeRecord, error?: string } {
    if (text === undefined) {
      decoded.delete(name)
      return {}
    }
    const known = decoded.get(name)
    if (known?.text === text) return known
    const fresh = { text, ...decodeRecord(text) }
    decoded.set(name, fresh)
    return fresh
  }

  function toView (node: V1Node): NodeView {
    const metadata = node.metadata!
    const labels = metadata.labels ?? {}
    const annotations = metadata.annotations ?? {}
    const name = metadata.name!
    const uid = metadata.uid ?? ''
    const { record, error } = recordOf(name, annotations[stateKey])
    const veto = annotations[vetoKey] !== undefined
      ? { reason: annotations[vetoKey]!, ...(annotations[vetoUntilKey] === undefined ? {} : { until: annotations[vetoUntilKey] }) }
      : annotations[nodeOptOuts.karpenter] === 'true' ? { reason: `${nodeOptOuts.karpenter}: "true"` } : undefined
    const allocatable = node.status?.allocatable ?? {}
    return {
      name,
      uid,
      pool: labels[policy.poolLabel] ?? '',
      zone: labels[policy.zoneLabel] ?? '',
      unschedulable: node.spec?.unschedulable === true,
      providerID: node.spec?.providerID,
      bootID: node.status?.nodeInfo?.bootID,
      ready: node.status?.conditions?.some(condition => condition.type === 'Ready' && condition.status === 'True') === true,
      deleting: metadata.deletionTimestamp !== undefined && metadata.deletionTimestamp !== null,
      taints: (node.spec?.taints ?? []).filter(t => t.effect === 'NoSchedule' || t.effect === 'NoExecute').map(t => ({ key: t.key, effect: t.effect, ...(t.value === undefined ? {} : { value: t.value }) })),
      veto,
      createdAt: metadata.creationTimestamp === undefined ? 0 : parseTime(String(metadata.creationTimestamp)),
      labels,
      allocatable: { cpu: parseQuantity(allocatable.cpu), memory: parseQuantity(allocatable.memory), pods: parseQuantity(allocatable.pods) },
      // A record of another Node object of the same name is history, not state.
      record: record !== undefined && record.uid !== undefined && record.uid !== uid ? undefined : record,
      recordError: error
    }
  }

  function patchOf (change: Change): NodePatch {
    // The phase also as a label, for `kubectl get nodes -L …/phase` and `-l …/phase=draining`;
    // gone once the node is back to normal.
    const settled = change.record.phase === 'healthy' || change.record.phase === 'cancelled'
    const patch: NodePatch = {
      annotations: { [stateKey]: encodeRecord(change.record), [phaseKey]: change.record.phase },
      labels: { [phaseKey]: settled ? null : change.record.phase }
    }
    if (change.unschedulable !== undefined) patch.unschedulable = change.unschedulable
    return patch
  }

  async function announce (node: V1Node, view: NodeView, before: NodeRecord | undefined, after: NodeRecord, batch?: EventBatch) {
    const name = node.metadata!.name!
    let event: NodeEvent | undefined
    if (before?.phase !== after.phase) {
      metrics.transitions.inc({ from: before?.phase ?? 'healthy', to: after.phase })
      log.info({ node: name, from: before?.phase ?? 'healthy', to: after.phase, reason: after.reason, outcome: after.outcome }, `node ${name} ${after.phase}`)
      const title = after.phase[0]!.toUpperCase() + after.phase.slice(1)
      event = { type: after.phase === 'failed' || after.phase === 'quarantined' ? 'Warning' : 'Normal', reason: `Remediation${title}`, action: after.phase, note: after.reason }
    } else if (after.deferred !== undefined && (after.deferred.reason !== before?.deferred?.reason || after.deferred.rule !== before.deferred.rule)) {
      metrics.blocked.inc({ rule: after.deferred.rule })
      log.info({ node: name, rule: after.deferred.rule, reason: after.deferred.reason }, `node ${name} deferred`)
      event = { type: 'Normal', reason: 'RemediationDeferred', action: 'defer', note: after.deferred.reason }
    }
    if (event === undefined) return
    if (batch !== undefined) {
      batch.push({ node, pool: view.pool, rule: after.deferred?.rule, event })
      return
    }
    await record(nodeRef(node), event)
  }
  // An Event is an explanation, not state: failing to write one must not stop the remediation.
  const record = (regarding: ObjectRef, event: NodeEvent) =>
    cluster.recordEvent(regarding, { ...event, note: event.note.slice(0, 1000) }).catch(err => log.warn({ err, regarding: regarding.name }, 'could not record event'))

  return {
    toView,

    /** A fresh read, for the steps that act on the machine (the provider needs the Node object). */
    async read (name: string): Promise<{ node: V1Node, view: NodeView } | undefined> {
      const node = await cluster.getNode(name)
      return node === undefined ? undefined : { node, view: toView(node) }
    },

    /**
     * Read-modify-write of one node's record. `decide` runs on the cached node first: most of the
     * time nothing changes and nothing is read or written. A change is patched with the cached
     * resourceVersion; a conflicting writer makes `decide` run again on a fresh read. `fence`, when
     * given, is asked right before every write: a replica that may no longer act writes nothing.
     */
    async persist (name: string, cached: V1Node | undefined, decide: (view: NodeView) => Change | undefined, fence?: () => boolean, batch?: EventBatch): Promise<{ node: V1Node, view: NodeView } | undefined> {
      let node = cached ?? await cluster.getNode(name)
      for (let attempt = 1; attempt <= 5; attempt++) {
        if (node === undefined) return undefined
        const view = toView(node)
        const change = decide(view)
        if (change === undefined) return { node, view }
        if (fence !== undefined && !fence()) throw new FencedError(`node ${name}`)
        try {
          const patched = await cluster.patchNode(name, patchOf(change), node.metadata!.resourceVersion)
          const after = toView(patched)
          await announce(patched, after, view.record, change.record, batch)
          return { node: patched, view: after }
        } catch (err) {
          if (isClusterError(err, 'not-found')) return undefined
          if (!isClusterError(err, 'conflict')) throw err
          log.debug({ node: name, attempt }, 'node changed while writing; retrying on a fresh read')
          node = await cluster.getNode(name)
        }
      }
      throw new ClusterError('conflict', `node ${name}: gave up after 5 conflicting writes`)
    },

    /**
     * Records a batch's Events. A storm makes thousands alike (same reason, rule and pool): more
     * than `eventsPerGroup` of them become one Event on `fleetRef` that counts and names them, so
     * the API server gets a handful of Events, not one per node; the nodes' own records and
     * `GET /v1/nodes` still say it for each.
     */
    async recordBatch (batch: EventBatch, fleetRef: ObjectRef): Promise<void> {
      const groups = new Map<string, EventBatch>()
      for (const entry of batch) {
        const key = `${entry.event.reason}\0${entry.rule ?? ''}\0${entry.pool}`
        const group = groups.get(key)
        if (group === undefined) groups.set(key, [entry])
        else group.push(entry)
      }
      await forEachLimited(groups.values(), 4, async group => {
        if (group.length <= eventsPerGroup) {
          for (const entry of group) await record(nodeRef(entry.node), entry.event)
          return
        }
        const [first] = group
        const names = group.map(entry => entry.node.metadata!.name!).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
        const rule = first!.rule === undefined ? '' : ` (rule ${first!.rule})`
        await record(fleetRef, {
          ...first!.event,
          note: `${group.length} nodes of pool ${first!.pool}: ${first!.event.reason}${rule}: ${names.slice(0, 5).join(', ')} and ${group.length - 5} more; ${first!.node.metadata!.name}: ${first!.event.note}`
        })
      })
    }
  }
}

/** Above this many alike Events in one batch, one Event on the controller's Lease says it for all. */
export const eventsPerGroup = 10

/** Events of one batch of writes (a notification, a pass), recorded together by `recordBatch`. */
export type EventBatch = Array<{ node: V1Node, pool: string, rule: string | undefined, event: NodeEvent }>

export const nodeRef = (node: V1Node) => ({ kind: 'Node' as const, name: node.metadata!.name!, ...(node.metadata?.uid === undefined ? {} : { uid: node.metadata.uid }) })

/**
 * The fleet state (departed nodes, breaker memory, doubts), read and written as annotations of
 * the controller's state object with optimistic concurrency, like the node records.
 */
export function createFleetStateStore (deps: { cluster: Cluster, annotationPrefix: string, log: Logger }) {
  const { cluster, annotationPrefix: prefix } = deps
  let current: FleetState = emptyFleetState
  const read = async (): Promise<FleetState> => {
    const stored = await cluster.readControllerState()
    current = decodeFleetState(stored.annotations, stored.version, prefix)
    return current
  }
  return {
    get current () { return current },
    refresh: read,
    /** A version of the state object read elsewhere (the elector reads the Lease anyway). */
    observe (stored: ControllerState): FleetState {
      current = decodeFleetState(stored.annotations, stored.version, prefix)
      return current
    },
    /**
     * Applies `change` to the stored state and writes what differs; a concurrent writer makes it
     * run again on a fresh read. Returns the state afterwards.
     */
    async update (change: (state: FleetState) => FleetState, fence?: () => boolean): Promise<FleetState> {
      let state = current.version === '' ? await read() : current
      for (let attempt = 1; attempt <= 5; attempt++) {
        const next = change(state)
        const patch = fleetStatePatch(state, next, prefix)
        if (Object.keys(patch).length === 0) return state
        if (fence !== undefined && !fence()) throw new FencedError('fleet state')
        try {
          const stored = await cluster.writeControllerState(patch, state.version)
          current = decodeFleetState(stored.annotations, stored.version, prefix)
          return current
        } catch (err) {
          if (!isClusterError(err, 'conflict')) throw err
          deps.log.debug({ attempt }, 'fleet state changed while writing; retrying on a fresh read')
          state = await read()
        }
      }
      throw new ClusterError('conflict', 'fleet state: gave up after 5 conflicting writes')
    }
  }
}
