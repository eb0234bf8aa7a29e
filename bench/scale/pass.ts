import { setImmediate as nextTurn } from 'node:timers/promises'
import { createSimCluster } from '../../src/sim/cluster.ts'
import { iso } from '../../src/time.ts'
import { kwokNode } from '../../test/kube/fixtures/real-node.ts'
import { alert } from '../../test/support/core.ts'
import { startEngine } from '../../test/support/sim.ts'
import { median } from '../median.ts'

/**
 * The core alone at fleet sizes no local control plane holds: the engine as main.ts composes it
 * (test/support/sim.ts), on a simulated cluster of `nodes` KWOK-shaped nodes in 10 pools × 3
 * zones, `pending` of them (the same number at every size) alerting and held by a cluster-wide
 * pause so that nothing starts, the rest healthy. The engine's CPU time (this process's user + system, not wall time: the machine is
 * shared), median of `rounds`, from the change until the engine is idle again:
 * - `ignoredMs`: a kubelet heartbeat (the Ready condition's lastHeartbeatTime), which no rule
 *   reads: it should queue nothing, whatever the fleet's size;
 * - `changedMs`: another controller cordons (or uncordons) a healthy node, which the budget reads:
 *   that node is queued and the schedule looks at the pending nodes, not at the fleet;
 * - `passMs`: a full pass (`engine.reconcile()`): every tracked node (the pending ones) and the schedule;
 * - `reloadMs`: the whole fleet re-read from the cache and compared, as the periodic resync does
 *   (RESYNC_INTERVAL, 5 min) and a new leader does, here through a leadership change.
 * With as many tracked nodes at every size, the first three should stay flat from 1k to 50k nodes;
 * only the last visits the fleet. `writes`: what all of that wrote to the cluster (nothing changes
 * a persisted state, so it should be 0).
 */
export type PassTimings = { nodes: number, pending: number, ignoredMs: number, changedMs: number, passMs: number, reloadMs: number, writes: number }

const cpuMs = () => {
  const used = process.cpuUsage()
  return (used.user + used.system) / 1000
}

/** CPU time of `change` plus whatever it makes the engine do until it is idle again. */
async function cost (change: () => void | Promise<void>, idle: () => Promise<void>): Promise<number> {
  const started = cpuMs()
  await change()
  await nextTurn() // a change is announced on the next turn, as a watch event would be
  await idle()
  return cpuMs() - started
}

export async function onePass (nodes: number, pending = 50, rounds = 20): Promise<PassTimings> {
  const sim = createSimCluster({ terminationDelayMs: 20, startDelayMs: 20, retryAfterMs: 30 })
  for (let i = 0; i < nodes; i++) sim.addNode(kwokNode(i))
  // The fleet exists before the controller starts: its announcements are not changes to react to.
  await nextTurn()
  const { engine } = startEngine(sim, { RECONCILE_INTERVAL: '1h', RESYNC_INTERVAL: '1h' })
  const idle = () => engine.idle()
  const name = (i: number) => kwokNode(i).metadata!.name!
  try {
    await idle()
    await engine.setPause(undefined, { reason: 'scale bench: nothing starts', by: 'bench', at: iso(Date.now()) })
    if (nodes < 2 * Math.max(pending, rounds)) throw new Error(`onePass: ${nodes} nodes are too few for ${pending} pending ones and ${rounds} rounds`)
    const startsAt = iso(Date.now() - 10 * 60_000)
    // Evenly spaced, so the pending nodes are spread over every pool and zone; the healthy nodes changed are their neighbours.
    const spacing = Math.floor(nodes / Math.max(pending, rounds))
    await engine.intake(Array.from({ length: pending }, (_, k) => alert(name(k * spacing), { startsAt, fingerprint: `fp-${name(k * spacing)}` })), 'alertmanager', false)
    await idle()
    const held = (await engine.nodes()).filter(n => n.phase === 'pending').length
    if (held !== pending) throw new Error(`onePass: ${held} nodes pending, expected ${pending}`)
    const healthy = (round: number) => name(round * spacing + 1)
    const mutationsBefore = sim.mutations.length

    const ignored: number[] = []
    const changed: number[] = []
    const pass: number[] = []
    const reload: number[] = []
    for (let round = 0; round < rounds; round++) {
      const heartbeat = new Date()
      ignored.push(await cost(() => sim.updateNode(healthy(round), node => {
        for (const condition of node.status!.conditions!) if (condition.type === 'Ready') condition.lastHeartbeatTime = heartbeat
      }), idle))
      // Cordoned in one round, uncordoned in the next: the fleet stays as it was.
      changed.push(await cost(() => sim.updateNode(healthy(round - round % 2), node => { node.spec = { ...node.spec, unschedulable: round % 2 === 0 } }), idle))
      pass.push(await cost(() => engine.reconcile(), idle))
      if (round < 5) reload.push(await cost(() => engine.setLeader(true), idle))
    }
    return { nodes, pending, ignoredMs: median(ignored), changedMs: median(changed), passMs: median(pass), reloadMs: median(reload), writes: sim.mutations.length - mutationsBefore }
  } finally {
    await engine.stop()
    sim.close()
  }
}
