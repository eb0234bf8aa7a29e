// The simulated cluster against the same Cluster contract the real API server passes
// (test/kube/cluster.test.ts): the sim stands in for Kubernetes in every engine test, so it
// must not be kinder than the real thing.
import t from 'tap'
import type { V1Pod } from '@kubernetes/client-node'
import { createSimCluster } from '../../src/sim/cluster.ts'
import { clusterContract } from '../support/cluster-contract.ts'

await clusterContract(t, 'simulated', async () => {
  const sim = createSimCluster({ terminationDelayMs: 20, startDelayMs: 20, retryAfterMs: 30 })
  const namespace = 'default'
  const node = (name: string) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name, uid: `sim-node-${name}` }, spec: {} })
  sim.addNode(node('sim-worker'))
  sim.addNode(node('sim-idle'))
  return {
    cluster: sim,
    namespace,
    node: 'sim-worker',
    idleNode: 'sim-idle',
    patienceMs: 2000,
    async addNode (name) { sim.addNode(node(name)) },
    async removeNode (name) { sim.removeNode(name) },
    async addPod (pod) {
      const running = pod.phase === 'Running'
      const spec: V1Pod = {
        metadata: { name: pod.name, namespace, labels: pod.labels ?? {}, ...(pod.finalizers ? { finalizers: pod.finalizers } : {}) },
        spec: { nodeName: pod.node, containers: [{ name: 'app', image: 'registry.invalid/app:1' }] },
        status: { phase: pod.phase, ...(running ? { conditions: [{ type: 'Ready', status: 'True' }] } : {}) }
      }
      sim.addPod(spec)
      return sim.pods().find(p => p.metadata?.name === pod.name)!
    },
    async addPdb (pdb) {
      sim.addPodDisruptionBudget({ metadata: { name: pdb.name, namespace }, spec: { minAvailable: pdb.minAvailable, selector: { matchLabels: pdb.matchLabels } } })
    },
    async removeFinalizers (ns, name) { sim.removeFinalizers(ns, name) },
    async eventReasons (name) { return sim.events.filter(e => e.node === name).map(e => e.event.reason) },
    async teardown () { sim.close() }
  }
})
