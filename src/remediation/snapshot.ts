import type { NodeRecord } from './record.ts'

/** What the core knows of one node: its place in the fleet and its persisted remediation record. */
export type NodeView = {
  name: string
  pool: string
  zone: string
  unschedulable: boolean
  providerID: string | undefined
  /** status.nodeInfo.bootID: changes when the machine restarts. */
  bootID: string | undefined
  /** The kubelet reports Ready=True. */
  ready: boolean
  record: NodeRecord | undefined
  /** Set when the persisted record cannot be read; such a node is never acted on. */
  recordError: string | undefined
}

/** The fleet at one instant, by node name. A Map is one; `overlay` makes another without copying. */
export type Snapshot = {
  get (name: string): NodeView | undefined
  has (name: string): boolean
  values (): Iterable<NodeView>
  [Symbol.iterator] (): Iterator<[string, NodeView]>
}

/** `base` with some of its nodes replaced. Copying a large fleet per notification cost more than deciding. */
export function overlay (base: Snapshot, changed: ReadonlyMap<string, NodeView>): Snapshot {
  if (changed.size === 0) return base
  const values = function * () {
    for (const view of base.values()) yield changed.get(view.name) ?? view
  }
  return {
    get: name => changed.get(name) ?? base.get(name),
    has: name => base.has(name),
    values,
    * [Symbol.iterator] () {
      for (const view of values()) yield [view.name, view]
    }
  }
}
