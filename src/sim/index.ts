import type { Logger } from 'pino'
import { createSimCluster, type SimCluster } from './cluster.ts'
import { createSimProvider } from './provider.ts'
import { seedTopology, type TopologyLabels } from './topology.ts'

/** Timings of the demo cluster: slow enough to watch a drain through GET /v1/nodes, fast enough to wait for. */
const demo = { terminationDelayMs: 3000, startDelayMs: 2000, retryAfterMs: 5000, providerDelayMs: 5000 }

/** The seeded simulated cluster and its provider, announced loudly: it must never pass for production. */
export function startSimulation (labels: TopologyLabels, log: Logger): { cluster: SimCluster, provider: ReturnType<typeof createSimProvider> } {
  const cluster = createSimCluster(demo)
  seedTopology(cluster, labels)
  const banner = 'SIMULATED CLUSTER: worker-1 … worker-10 exist only in this process. Nothing real is cordoned, drained or replaced. Set CLUSTER=kubernetes for a real cluster.'
  log.warn({ simulated: true }, banner)
  return { cluster, provider: createSimProvider(cluster, { delayMs: demo.providerDelayMs }) }
}
