import type { V1Node } from '@kubernetes/client-node'

/**
 * The part of a Node the controller decides on, as a plain frozen V1Node. A kubelet's Node is
 * mostly what no rule reads: `managedFields` of every writer, `status.images` (often 50 entries
 * with several names each), addresses, every condition, daemon endpoints, volumes: 10–30 KB per
 * node in memory. Kept: identity and versions, all labels (pool, zone and selectors are labels),
 * the annotations `keepAnnotation` accepts (our state and the opt-outs we honour), taints,
 * unschedulable, providerID, the Ready condition, the boot id, and cpu/memory/pods allocatable
 * for the capacity check. Heartbeats (lastHeartbeatTime) are dropped too, so two versions of a
 * node that differ only by a heartbeat have equal lean views (but for resourceVersion).
 */
export function leanNode (node: V1Node, keepAnnotation: (key: string) => boolean): V1Node {
  const metadata = node.metadata ?? {}
  const lean: V1Node = {
    metadata: defined({
      name: metadata.name,
      uid: metadata.uid,
      resourceVersion: metadata.resourceVersion,
      creationTimestamp: metadata.creationTimestamp,
      deletionTimestamp: metadata.deletionTimestamp,
      // Copies: the lean node is frozen, the node it was made from stays the caller's.
      labels: metadata.labels === undefined ? undefined : { ...metadata.labels },
      annotations: picked(metadata.annotations, keepAnnotation)
    })
  }
  const spec = node.spec === undefined ? {} : defined({ unschedulable: node.spec.unschedulable, providerID: node.spec.providerID, taints: node.spec.taints?.map(taint => ({ ...taint })) })
  if (Object.keys(spec).length > 0) lean.spec = spec
  const status = leanStatus(node.status)
  if (status !== undefined) lean.status = status
  return deepFreeze(lean)
}

/** Our annotations (`PREFIX/…`), the Cluster API ones the provider reads, and the opt-outs other autoscalers define. */
export function keptAnnotations (annotationPrefix: string): (key: string) => boolean {
  const ours = `${annotationPrefix}/`
  return key => key.startsWith(ours) || key.startsWith(CLUSTER_API) || OPT_OUTS.has(key)
}

const CLUSTER_API = 'cluster.x-k8s.io/'
const OPT_OUTS = new Set(['karpenter.sh/do-not-disrupt', 'cluster-autoscaler.kubernetes.io/scale-down-disabled'])
const ALLOCATABLE = ['cpu', 'memory', 'pods'] as const

function leanStatus (status: V1Node['status']): V1Node['status'] {
  if (status === undefined) return undefined
  const lean: NonNullable<V1Node['status']> = {}
  const ready = status.conditions?.find(condition => condition.type === 'Ready')
  if (ready !== undefined) lean.conditions = [defined({ type: ready.type, status: ready.status, reason: ready.reason })]
  const bootID = status.nodeInfo?.bootID
  // nodeInfo's other fields are required by the type, never read: the lean view leaves them out.
  if (bootID !== undefined) lean.nodeInfo = { bootID } as NonNullable<V1Node['status']>['nodeInfo']
  const allocatable = picked(status.allocatable, key => (ALLOCATABLE as readonly string[]).includes(key))
  if (allocatable !== undefined) lean.allocatable = allocatable
  return Object.keys(lean).length > 0 ? lean : undefined
}

function picked<T> (map: Record<string, T> | undefined, keep: (key: string) => boolean): Record<string, T> | undefined {
  if (map === undefined) return undefined
  const kept = Object.entries(map).filter(([key]) => keep(key))
  return kept.length > 0 ? Object.fromEntries(kept) : undefined
}

/** The object without its undefined fields, so a lean node holds no empty slots. */
function defined<T extends object> (object: T): T {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined)) as T
}

function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner)
    Object.freeze(value)
  }
  return value
}
