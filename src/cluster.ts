import type { V1Node, V1OwnerReference, V1PersistentVolume, V1PersistentVolumeClaim, V1Pod, V1PodDisruptionBudget } from '@kubernetes/client-node'

/**
 * The seam between the engine and a cluster. `src/sim` implements it in memory for the default
 * local mode and the unit tests; `src/kube` implements it on the Kubernetes API. Both must keep
 * the API server's semantics: optimistic concurrency on nodes, 429 from PodDisruptionBudgets,
 * pods that take time to terminate.
 */
export type Cluster = {
  readonly kind: 'simulated' | 'kubernetes'
  /** Nodes as last observed (a watch cache on Kubernetes): the same frozen array until a node changes. Throws ClusterError 'unavailable' when unknown. */
  listNodes (): Promise<V1Node[]>
  /** A fresh read, for read-modify-write. Undefined when the node does not exist. */
  getNode (name: string): Promise<V1Node | undefined>
  /** Merge-patches annotations (null deletes) and `spec.unschedulable`; with a resourceVersion, fails with 'conflict' if the node changed. */
  patchNode (name: string, patch: NodePatch, resourceVersion?: string): Promise<V1Node>
  listPodsOnNode (name: string): Promise<V1Pod[]>
  /** Every pod of the cluster (paginated underneath): what the capacity check counts as requested per node. */
  listAllPods (): Promise<V1Pod[]>
  /** Whether the controller an owner reference names still exists; `unknown` for kinds we do not look up. */
  controllerExists (namespace: string, owner: V1OwnerReference): Promise<'exists' | 'gone' | 'unknown'>
  getClaim (namespace: string, name: string): Promise<V1PersistentVolumeClaim | undefined>
  getVolume (name: string): Promise<V1PersistentVolume | undefined>
  listDisruptionBudgets (namespace: string): Promise<V1PodDisruptionBudget[]>
  evictPod (namespace: string, name: string): Promise<EvictionResult>
  deletePod (namespace: string, name: string, gracePeriodSeconds?: number): Promise<void>
  /** Resolves once no pod with this pod's uid exists; rejects when the signal aborts. */
  waitForPodGone (pod: V1Pod, signal: AbortSignal): Promise<void>
  /** An events.k8s.io Event about a Node, or about the controller's own Lease for fleet-wide news. */
  recordEvent (regarding: ObjectRef, event: NodeEvent): Promise<void>
  /** Calls back whenever a node changes (`deleted` for its last state), so the engine reacts without polling. Returns an unsubscribe. */
  onNodeChange (listener: (node: V1Node, deleted: boolean) => void): () => void
  /** The controller's fleet-wide state: annotations on its own Lease (in memory on the simulated cluster). */
  readControllerState (): Promise<ControllerState>
  /** Merge-patches those annotations (null deletes); fails with 'conflict' unless `version` is the stored one. */
  writeControllerState (patch: Record<string, string | null>, version: string): Promise<ControllerState>
}

export type ObjectRef = { kind: 'Node', name: string, uid?: string } | { kind: 'Lease', name: string, namespace: string, uid?: string }

export type ControllerState = { annotations: Readonly<Record<string, string>>, version: string }

/** A JSON merge patch of a Node's metadata and spec, as far as we write them: null removes a key. */
export type NodePatch = { annotations?: Record<string, string | null>, labels?: Record<string, string | null>, unschedulable?: boolean }

/** A string map with a merge patch applied (null removes the key), as the API server applies it. */
export function mergeStrings (base: Readonly<Record<string, string>> | undefined, patch: Readonly<Record<string, string | null>> | undefined): Record<string, string> {
  const merged: Record<string, string> = { ...base }
  for (const [key, value] of Object.entries(patch ?? {})) {
    if (value === null) delete merged[key]
    else merged[key] = value
  }
  return merged
}

export type EvictionResult =
  | { status: 'evicted' }
  /** The pod no longer exists: counts as evicted. */
  | { status: 'gone' }
  /** Refused for now (429, a PodDisruptionBudget); try again after the hint when given. */
  | { status: 'blocked', message: string, retryAfterMs?: number }

export type NodeEvent = { type: 'Normal' | 'Warning', reason: string, action: string, note: string }

export type ClusterErrorKind = 'unavailable' | 'conflict' | 'not-found' | 'invalid'

export class ClusterError extends Error {
  readonly kind: ClusterErrorKind
  constructor (kind: ClusterErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ClusterError'
    this.kind = kind
  }
}

export function isClusterError (err: unknown, kind: ClusterErrorKind): err is ClusterError {
  return err instanceof ClusterError && err.kind === kind
}
