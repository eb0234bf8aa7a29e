import type { NodeRecord } from './record.ts'

export type Taint = { key: string, value?: string, effect: string }

/**
 * What the core knows of one node: its place in the fleet, what the fleet says about its service
 * (schedulable, Ready, being deleted, tainted by another disruptor), the operator's opt-outs, and
 * its persisted remediation record. Views are compared field by field to decide whether a node
 * change matters to any rule (a heartbeat does not).
 */
export type NodeView = {
  name: string
  uid: string
  pool: string
  zone: string
  unschedulable: boolean
  providerID: string | undefined
  /** status.nodeInfo.bootID: changes when the machine restarts. */
  bootID: string | undefined
  /** The kubelet reports Ready=True. */
  ready: boolean
  /** metadata.deletionTimestamp is set. */
  deleting: boolean
  /** NoSchedule/NoExecute taints; PreferNoSchedule never takes a node out of service. */
  taints: readonly Taint[]
  /** Why the operator (or another tool) says "not this node", when they do. */
  veto: { reason: string, until?: string } | undefined
  /** Epoch ms of metadata.creationTimestamp (a replacement is a node created after its predecessor left). */
  createdAt: number
  /** Labels, for the capacity check's nodeSelector and affinity matching. */
  labels: Readonly<Record<string, string>>
  /** status.allocatable in base units (cores, bytes, pods), for the capacity check. */
  allocatable: { cpu: number, memory: number, pods: number }
  /** The persisted record, when it belongs to this Node object. */
  record: NodeRecord | undefined
  /** Set when the persisted record cannot be read; such a node is never acted on. */
  recordError: string | undefined
}

/** The fleet at one instant, by node name. */
export type Snapshot = {
  get (name: string): NodeView | undefined
  has (name: string): boolean
  values (): Iterable<NodeView>
}
