import { performance } from 'node:perf_hooks'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { createSimCluster } from '../../src/sim/cluster.ts'
import { kwokNode } from '../../test/kube/fixtures/real-node.ts'
import { startEngine } from '../../test/support/sim.ts'
import { median } from '../median.ts'

/**
 * The core alone at fleet sizes no local control plane holds: the engine as main.ts composes it
 * (test/support/sim.ts), on a simulated cluster of `nodes` KWOK-shaped nodes in 10 pools × 3
 * zones, all healthy. Two numbers, medians of `rounds`:
 * - `passMs`: one reconcile pass while nothing changed;
 * - `writeMs`: from one node's write (an annotation no rule reads) until the engine is idle again,
 *   i.e. whatever that change makes it do.
 * This is the hook for the incremental engine: it should make `writeMs` independent of `nodes`.
 */
export type PassTimings = { nodes: number, passMs: number, writeMs: number }

export async function onePass (nodes: number, rounds = 10): Promise<PassTimings> {
  const sim = createSimCluster({ terminationDelayMs: 20, startDelayMs: 20, retryAfterMs: 30 })
  for (let i = 0; i < nodes; i++) sim.addNode(kwokNode(i))
  // The fleet exists before the controller starts: its announcements are not changes to react to.
  await nextTurn()
  const { engine } = startEngine(sim, { RECONCILE_INTERVAL: '1h' })
  try {
    await engine.idle()
    const pass: number[] = []
    const write: number[] = []
    for (let round = 0; round < rounds; round++) {
      let started = performance.now()
      await engine.reconcile()
      pass.push(performance.now() - started)

      started = performance.now()
      await sim.patchNode(kwokNode(round).metadata!.name!, { annotations: { 'example.com/touched': String(round) } })
      await nextTurn() // the change is announced on the next turn, as a watch event would be
      await engine.idle()
      write.push(performance.now() - started)
    }
    return { nodes, passMs: median(pass), writeMs: median(write) }
  } finally {
    await engine.stop()
    sim.close()
  }
}
