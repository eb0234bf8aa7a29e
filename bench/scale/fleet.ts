import { readFileSync, writeFileSync } from 'node:fs'
import { Agent, request } from 'node:https'
import { join } from 'node:path'
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1Node } from '@kubernetes/client-node'
import { stringify as toYaml } from 'yaml'
import { fakeNode, waitFor, type ControlPlane, type ControlPlaneOptions } from '../../test/support/controlplane.ts'

/**
 * A fleet of thousands of KWOK nodes and tens of thousands of pods on the local control plane,
 * made quickly: bounded-concurrency API calls, and client rate limits raised where the
 * components' defaults (kube-controller-manager 20 requests/s, kube-scheduler 50/s) would make
 * 50,000 pods take most of an hour.
 */

export type FleetShape = { nodes: number, pods: number, pools: number, zones: number }

export const poolOf = (i: number, shape: FleetShape) => `pool-${i % shape.pools}`
export const zoneOf = (i: number, shape: FleetShape) => `zone-${Math.floor(i / shape.pools) % shape.zones}`
export const nodeName = (i: number) => `node-${String(i).padStart(5, '0')}`

/**
 * Control-plane options for a large fleet.
 * - KWOK heartbeats through node Leases, as kubelets do (the Node status only changes every 10–20
 *   minutes): without a lease KWOK rewrites every Node's status every few seconds, which no real
 *   cluster does and which would be all the controller sees. The bench drives its own bursts.
 * - kube-scheduler without the topology-spread and inter-pod-affinity plugins: their pre-score
 *   step visits every node for every pod, which at 5,000 nodes held scheduling to ~10 pods/s on
 *   this machine (an hour for 50,000). Pods still spread: least-allocated scoring of their
 *   default requests.
 */
export function scaleControlPlane (dir: string): Omit<ControlPlaneOptions, 'binDir'> {
  const kwokConfig = join(dir, 'kwok.yaml')
  writeFileSync(kwokConfig, toYaml({
    apiVersion: 'config.kwok.x-k8s.io/v1alpha1',
    kind: 'KwokConfiguration',
    options: { nodeLeaseDurationSeconds: 600, nodeLeaseParallelism: 8, nodePlayStageParallelism: 16, podPlayStageParallelism: 16 }
  }))
  return {
    startTimeoutMs: 120_000,
    schedulerConfig: {
      apiVersion: 'kubescheduler.config.k8s.io/v1',
      kind: 'KubeSchedulerConfiguration',
      clientConnection: { qps: 500, burst: 1000 },
      profiles: [{ schedulerName: 'default-scheduler', plugins: { multiPoint: { disabled: [{ name: 'PodTopologySpread' }, { name: 'InterPodAffinity' }] } } }]
    },
    extraArgs: {
      'kube-controller-manager': ['--kube-api-qps=500', '--kube-api-burst=1000', '--concurrent-replicaset-syncs=10'],
      // KWOK logs every status patch at INFO: tens of thousands of lines, CPU the machine needs elsewhere.
      kwok: [`--config=${kwokConfig}`, '--v=WARN']
    }
  }
}

/** Runs `fn` over `items`, at most `limit` at a time; rejects with the first failure. */
export async function inParallel<T> (items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}

const isReady = (node: V1Node) => node.status?.conditions?.some(c => c.type === 'Ready' && c.status === 'True') === true

async function countNodes (core: CoreV1Api, accept: (node: V1Node) => boolean): Promise<number> {
  let count = 0
  let next: string | undefined
  do {
    const page = await core.listNode(next === undefined ? { limit: 500 } : { limit: 500, _continue: next })
    count += page.items.filter(accept).length
    next = page.metadata?._continue || undefined
  } while (next !== undefined)
  return count
}

/** Creates the KWOK nodes (pools × zones, round robin) and waits until KWOK reports every one Ready. */
export async function createNodes (kubeConfig: KubeConfig, shape: FleetShape): Promise<string[]> {
  const core = kubeConfig.makeApiClient(CoreV1Api)
  const indexes = Array.from({ length: shape.nodes }, (_, i) => i)
  await inParallel(indexes, 32, async i => {
    const name = nodeName(i)
    const zone = zoneOf(i, shape)
    await core.createNode({ body: fakeNode({ name, labels: { pool: poolOf(i, shape), 'topology.kubernetes.io/zone': zone }, providerID: `kwok:///${zone}/${name}` }) })
  })
  await waitFor(`KWOK to report ${shape.nodes} nodes Ready`, async () => await countNodes(core, isReady) === shape.nodes, { timeoutMs: 30 * 60_000, intervalMs: 2000 })
  return indexes.map(nodeName)
}

/** One Deployment per pool, kept to it by nodeSelector; waits until every replica is ready. */
export async function createWorkloads (kubeConfig: KubeConfig, shape: FleetShape): Promise<void> {
  const apps = kubeConfig.makeApiClient(AppsV1Api)
  const pools = Array.from({ length: shape.pools }, (_, p) => `pool-${p}`)
  const replicas = (p: number) => Math.floor(shape.pods / shape.pools) + (p < shape.pods % shape.pools ? 1 : 0)
  await inParallel(pools, 10, async pool => {
    const p = Number(pool.slice('pool-'.length))
    await apps.createNamespacedDeployment({
      namespace: 'default',
      body: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: `app-${pool}` },
        spec: {
          replicas: replicas(p),
          selector: { matchLabels: { app: `app-${pool}` } },
          template: {
            metadata: { labels: { app: `app-${pool}` } },
            spec: {
              nodeSelector: { pool },
              tolerations: [{ key: 'kwok.x-k8s.io/node', operator: 'Exists', effect: 'NoSchedule' }],
              containers: [{ name: 'app', image: 'registry.example/app:1' }]
            }
          }
        }
      }
    })
  })
  await waitFor(`${shape.pods} pods ready`, async () => {
    const deployments = (await apps.listNamespacedDeployment({ namespace: 'default' })).items
    return deployments.reduce((sum, d) => sum + (d.status?.readyReplicas ?? 0), 0) >= shape.pods
  }, { timeoutMs: 60 * 60_000, intervalMs: 3000 })
}

/**
 * A kubelet heartbeat on every node, as fast as the API server takes them: the Ready
 * condition's lastHeartbeatTime, a change no remediation rule reads. Over kept-alive
 * connections (the typed client opens one per request, and the TLS handshakes, not the writes,
 * would set the pace). Returns the seconds it took.
 */
export async function heartbeatBurst (cp: ControlPlane, names: readonly string[], concurrency = 32): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency, ca: readFileSync(cp.caPath) })
  const patch = (name: string) => new Promise<void>((resolve, reject) => {
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z')
    const body = JSON.stringify({ status: { conditions: [{ type: 'Ready', lastHeartbeatTime: now }] } })
    const req = request(`${cp.server}/api/v1/nodes/${name}/status`, {
      method: 'PATCH',
      agent,
      headers: { authorization: `Bearer ${cp.adminToken}`, 'content-type': 'application/strategic-merge-patch+json', 'content-length': Buffer.byteLength(body) }
    }, res => {
      res.resume()
      res.on('end', () => res.statusCode === 200 ? resolve() : reject(new Error(`heartbeat on ${name}: HTTP ${res.statusCode}`)))
    })
    req.on('error', reject)
    req.end(body)
  })
  const started = Date.now()
  try {
    await inParallel(names, concurrency, patch)
  } finally {
    agent.destroy()
  }
  return (Date.now() - started) / 1000
}

/** The node the most pods run on, among the first few of a pool: the remediation's subject. */
export async function busiestNode (kubeConfig: KubeConfig, candidates: readonly string[]): Promise<{ name: string, pods: number }> {
  const core = kubeConfig.makeApiClient(CoreV1Api)
  let best = { name: candidates[0]!, pods: -1 }
  for (const name of candidates) {
    const pods = (await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${name}` })).items.length
    if (pods > best.pods) best = { name, pods }
  }
  return best
}
