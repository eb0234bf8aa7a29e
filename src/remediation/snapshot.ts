import type { NodeRecord } from './record.ts'

/** What the core knows of one node: its place in the fleet and its persisted remediation record. */
export type NodeView = {
  name: string
  pool: string
  zone: string
  unschedulable: boolean
  providerID: string | undefined
  record: NodeRecord | undefined
  /** Set when the persisted record cannot be read; such a node is never acted on. */
  recordError: string | undefined
}

export type Snapshot = ReadonlyMap<string, NodeView>
