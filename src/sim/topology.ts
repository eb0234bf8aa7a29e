import type { V1Node, V1NodeSystemInfo, V1Pod, V1Volume } from '@kubernetes/client-node'
import type { SimCluster } from './cluster.ts'

/**
 * The fixed fleet `npm start` runs on: worker-1 … worker-10 in two pools and two zones, with the
 * pods a drain has to reason about. Deterministic, so the README's walkthrough and the captured
 * Alertmanager payloads (which name worker-3) behave the same every time.
 */
export type TopologyLabels = { poolLabel: string, zoneLabel: string, excludeAnnotation: string }

export const simNodeCount = 10
const pools = ['app', 'data'] as const
const zones = ['zone-a', 'zone-b'] as const

export function simNodeName (i: number): string {
  return `worker-${i}`
}

/** What a kubelet reports of its machine; the bootID is what a reboot changes. */
export function simNodeInfo (bootID: string): V1NodeSystemInfo {
  return {
    architecture: 'amd64',
    bootID,
    containerRuntimeVersion: 'containerd://2.1.0',
    kernelVersion: '6.12.0',
    kubeProxyVersion: '',
    kubeletVersion: 'v1.35.4',
    machineID: bootID,
    operatingSystem: 'linux',
    osImage: 'simulated',
    systemUUID: bootID
  }
}

function node (i: number, labels: TopologyLabels): V1Node {
  const pool = i <= simNodeCount / 2 ? pools[0] : pools[1]
  const zone = i % 2 === 1 ? zones[0] : zones[1]
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: simNodeName(i),
      uid: `sim-node-${i}`,
      labels: { [labels.poolLabel]: pool, [labels.zoneLabel]: zone, 'kubernetes.io/hostname': simNodeName(i) },
      annotations: {}
    },
    spec: { providerID: `sim:///${zone}/machine-${i}` },
    status: { conditions: [{ type: 'Ready', status: 'True' }], nodeInfo: simNodeInfo(`boot-${i}-1`), allocatable: { cpu: '8', memory: '32Gi', pods: '110' } }
  }
}

function pod (name: string, nodeName: string, owner: { kind: string, name: string } | undefined, extra: { labels?: Record<string, string>, annotations?: Record<string, string>, phase?: string, finalizers?: string[], volumes?: V1Volume[] } = {}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'default',
      labels: extra.labels ?? {},
      annotations: extra.annotations ?? {},
      ...(owner ? { ownerReferences: [{ apiVersion: owner.kind === 'Job' ? 'batch/v1' : 'apps/v1', kind: owner.kind, name: owner.name, uid: `sim-owner-${owner.name}`, controller: true }] } : {}),
      ...(extra.finalizers ? { finalizers: extra.finalizers } : {})
    },
    spec: { nodeName, containers: [{ name: 'main', image: 'registry.example/app:1', resources: { requests: { cpu: '100m', memory: '128Mi' } } }], ...(extra.volumes ? { volumes: extra.volumes } : {}) },
    status: { phase: extra.phase ?? 'Running' }
  }
}

export function seedTopology (sim: SimCluster, labels: TopologyLabels): void {
  const nodes = Array.from({ length: simNodeCount }, (_, k) => k + 1)
  for (const i of nodes) {
    sim.addNode(node(i, labels))
    const name = simNodeName(i)
    sim.addPod(pod(`node-exporter-${name}`, name, { kind: 'DaemonSet', name: 'node-exporter' }))
    sim.addPod(pod(`kube-proxy-${name}`, name, undefined, { annotations: { 'kubernetes.io/config.mirror': 'sim' } }))
    for (const replica of [1, 2]) sim.addPod(pod(`web-${i}-${replica}`, name, { kind: 'ReplicaSet', name: 'web' }, { labels: { app: 'web' } }))
  }
  sim.addReplicaSet('default', 'web', simNodeCount * 2)
  sim.addPodDisruptionBudget({ metadata: { name: 'web', namespace: 'default' }, spec: { maxUnavailable: 2, selector: { matchLabels: { app: 'web' } } } })

  // A database with a strict budget: evicting its pods has to wait for replacements to run.
  for (const i of [6, 7, 8]) sim.addPod(pod(`db-${i}`, simNodeName(i), { kind: 'ReplicaSet', name: 'db' }, { labels: { app: 'db' } }))
  sim.addReplicaSet('default', 'db', 3)
  sim.addPodDisruptionBudget({ metadata: { name: 'db', namespace: 'default' }, spec: { minAvailable: 2, selector: { matchLabels: { app: 'db' } } } })

  sim.addPod(pod('report-29031', simNodeName(3), { kind: 'Job', name: 'report' }, { phase: 'Succeeded' }))
  sim.addPod(pod('debug-shell', simNodeName(4), undefined, { annotations: { [labels.excludeAnnotation]: 'true' } }))
  // worker-5 carries pods a drain must not lose, so it is never started: one nothing would recreate,
  // one with emptyDir data, one its owner opted out of disruption.
  sim.addPod(pod('scratch-shell', simNodeName(5), undefined))
  sim.addPod(pod('cache-0', simNodeName(5), { kind: 'ReplicaSet', name: 'cache' }, { volumes: [{ name: 'scratch', emptyDir: {} }] }))
  sim.addReplicaSet('default', 'cache', 1)
  sim.addPod(pod('batch-7', simNodeName(5), { kind: 'Job', name: 'batch' }, { annotations: { 'karpenter.sh/do-not-disrupt': 'true' } }))
  sim.addController('default', 'Job', 'batch')
  // worker-9 keeps a database's data on a local PersistentVolume: it may be rebooted, never replaced.
  sim.addController('default', 'StatefulSet', 'pg')
  sim.addVolume({ metadata: { name: 'local-pg-0' }, spec: { local: { path: '/mnt/disks/ssd0' }, capacity: { storage: '100Gi' }, nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [simNodeName(9)] }] }] } } } })
  sim.addClaim({ metadata: { name: 'data-pg-0', namespace: 'default' }, spec: { volumeName: 'local-pg-0' } })
  sim.addPod(pod('pg-0', simNodeName(9), { kind: 'StatefulSet', name: 'pg' }, { volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data-pg-0' } }] }))

  // A pod whose finalizer nobody removes: draining worker-10 ends at its deadline.
  sim.addPod(pod('legacy-0', simNodeName(10), { kind: 'ReplicaSet', name: 'legacy' }, { finalizers: ['legacy.example.com/cleanup'] }))
  sim.addReplicaSet('default', 'legacy', 1)
}
