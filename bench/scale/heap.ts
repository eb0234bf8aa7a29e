import { spawnSync } from 'node:child_process'
import type { V1Node } from '@kubernetes/client-node'
import { keptAnnotations, leanNode } from '../../src/kube/lean-node.ts'
import { kwokNode, realNode } from '../../test/kube/fixtures/real-node.ts'

/**
 * Heap per cached node: `count` nodes, each as it arrives from the API server (JSON text parsed,
 * as a watch event is) and kept in a Map by name (as the informer keeps them), either whole or
 * as its lean view; V8 heap in use after a full GC, before and after, divided by `count`. Runs in
 * a child started with --expose-gc, so nothing else lives in that heap.
 */

export type HeapPerNode = { kwok: { full: number, lean: number }, real: { full: number, lean: number }, nodes: number }

const ours = keptAnnotations('self-healing-controller.io')
const state = JSON.stringify({ phase: 'healthy', since: '2025-03-02T09:30:00Z', reason: 'recovered', firings: [], history: [] })

function bytesPerNode (count: number, make: (i: number) => V1Node, keep: (node: V1Node) => V1Node): number {
  const gc = (globalThis as { gc?: () => void }).gc!
  gc()
  const before = process.memoryUsage().heapUsed
  const cache = new Map<string, V1Node>()
  for (let i = 0; i < count; i++) {
    // Through JSON text, so the cached node holds its own strings, as one from the wire does.
    const node = keep(JSON.parse(JSON.stringify(make(i))) as V1Node)
    cache.set(node.metadata!.name!, node)
  }
  gc()
  const after = process.memoryUsage().heapUsed
  if (cache.size !== count) throw new Error('lost nodes')
  return (after - before) / count
}

function measure (count: number): HeapPerNode {
  const withState = (fixture: typeof realNode) => (i: number) => fixture(i, { annotations: i % 10 === 0 ? { 'self-healing-controller.io/state': state } : {} })
  const lean = (node: V1Node) => leanNode(node, ours)
  const whole = (node: V1Node) => node
  return {
    nodes: count,
    kwok: { full: bytesPerNode(count, withState(kwokNode), whole), lean: bytesPerNode(count, withState(kwokNode), lean) },
    real: { full: bytesPerNode(count, withState(realNode), whole), lean: bytesPerNode(count, withState(realNode), lean) }
  }
}

/** Runs the measurement in a child with --expose-gc; `count` nodes of each shape. */
export function heapPerCachedNode (count = 5000): HeapPerNode {
  const child = spawnSync(process.execPath, ['--expose-gc', new URL(import.meta.url).pathname, String(count)], { encoding: 'utf8' })
  if (child.status !== 0) throw new Error(`heap measurement failed: ${child.stderr}`)
  return JSON.parse(child.stdout) as HeapPerNode
}

if (process.argv[1] === new URL(import.meta.url).pathname && process.argv[2] !== undefined) {
  console.log(JSON.stringify(measure(Number(process.argv[2]))))
}
