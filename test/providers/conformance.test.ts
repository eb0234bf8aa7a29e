import t from 'tap'
import type { V1Node } from '@kubernetes/client-node'
import { providerConformance } from './conformance.ts'
import type { MachineAction } from './conformance.ts'
import { noneProvider } from '../../src/providers/none.ts'
import { withRetries } from '../../src/providers/retry.ts'
import { nodeFor, startAwsWorld } from './aws-fixture.ts'
import { createSimProvider } from '../../src/sim/provider.ts'
import { seededSim } from '../support/sim.ts'
import { createClusterApiProvider } from '../../src/providers/clusterapi.ts'
import { createKarpenterProvider } from '../../src/providers/karpenter.ts'
import { binariesForTest } from '../support/controlplane.ts'
import { attributingWrites, createCapiNode, createKarpenterNode, CRDS, SA_USER, setUpClusterApi, startKubeWorld } from './fixtures/kube-world.ts'
import type { KubeWorld } from './fixtures/kube-world.ts'

let nodeCounter = 0
const plainNode = (): V1Node => {
  nodeCounter++
  return { apiVersion: 'v1', kind: 'Node', metadata: { name: `plain-${nodeCounter}` }, spec: { providerID: `test:///${nodeCounter}` } }
}

await providerConformance(t, 'none', async () => ({
  provider: noneProvider,
  makeNode: async () => plainNode(),
  wasActedOn: async () => 0,
  teardown: async () => {},
  supports: { reboot: 'ignores', replace: 'ignores' }
}))

await providerConformance(t, 'none wrapped in withRetries', async () => ({
  provider: withRetries(noneProvider, { deadlineMs: 5000, initialDelayMs: 10, maxDelayMs: 100 }),
  makeNode: async () => plainNode(),
  wasActedOn: async () => 0,
  teardown: async () => {},
  supports: { reboot: 'ignores', replace: 'ignores' }
}))

await providerConformance(t, 'aws (moto_server)', async () => {
  const world = await startAwsWorld()
  const provider = world.provider()
  let groups = 0
  const instanceOf = (node: V1Node): string => node.spec?.providerID?.split('/').pop() ?? ''
  return {
    provider,
    async makeNode () {
      groups++
      const [id] = await world.createAsg(`conformance-${groups}`, 1)
      if (id === undefined) throw new Error('the ASG launched no instance')
      return nodeFor(id)
    },
    async wasActedOn (node: V1Node, action: MachineAction) {
      const id = instanceOf(node)
      if (action === 'reboot') return world.proxy.succeeded('RebootInstances', id)
      return world.proxy.succeeded('TerminateInstanceInAutoScalingGroup', id) + world.proxy.succeeded('TerminateInstances', id)
    },
    teardown: () => world.close()
  }
})

await providerConformance(t, 'sim', async () => {
  const sim = seededSim()
  const provider = createSimProvider(sim, { delayMs: 5 })
  let next = 0
  return {
    provider,
    makeNode: async () => (await sim.getNode(`worker-${(next++ % 10) + 1}`))!,
    wasActedOn: async (node, action) => provider.actions.filter(a => a.node === node.metadata!.name && a.action === action).length,
    replaceOutcome: 'restarted',
    teardown: async () => sim.close()
  }
})

// ---------- Kubernetes-native providers: one control plane shared by both suites ----------

const controlPlaneBins = await binariesForTest()
let sharedWorld: Promise<KubeWorld> | undefined

/** Starts the control plane once, with both providers' CRDs and the controller ServiceAccount bound to both components. */
function kubeWorld (): Promise<KubeWorld> {
  sharedWorld ??= (async () => {
    const world = await startKubeWorld(controlPlaneBins.binDir)
    t.teardown(() => world.stop())
    await world.installCrds(CRDS.clusterapi, CRDS.karpenter)
    await world.serviceAccountKubeConfig()
    for (const component of ['clusterapi', 'karpenter'] as const) await world.kubectl(['apply', '-f', '-'], await world.renderComponent(component))
    await world.waitForPermission('patch', 'machines.cluster.x-k8s.io', true)
    await world.waitForPermission('delete', 'nodeclaims.karpenter.sh', true)
    return world
  })()
  return sharedWorld
}

if (controlPlaneBins.skip !== undefined) {
  t.test('provider conformance: clusterapi', { skip: controlPlaneBins.skip }, async () => {})
  t.test('provider conformance: karpenter', { skip: controlPlaneBins.skip }, async () => {})
} else {
  // Runs as the controller's ServiceAccount with only deploy/components/clusterapi bound; a
  // write counts for the action whose call was under way when the audit log received it.
  await providerConformance(t, 'clusterapi (real control plane, component RBAC)', async () => {
    const world = await kubeWorld()
    const scene = await setUpClusterApi(world, 'conformance-capi')
    const recorder = attributingWrites(createClusterApiProvider({ kubeConfig: await world.serviceAccountKubeConfig() }), world, SA_USER)
    let nodes = 0
    return {
      provider: recorder.provider,
      async makeNode () {
        nodes++
        return await createCapiNode(world, scene, `conformance-capi-${nodes}`, `machine-${nodes}`)
      },
      wasActedOn: async (node: V1Node, action: MachineAction) =>
        await recorder.actedOn(node.metadata?.name ?? '', { resource: 'machines', namespace: scene.namespace, name: node.metadata?.annotations?.['cluster.x-k8s.io/machine'] ?? '' }, action),
      teardown: async () => {},
      supports: { reboot: 'unsupported' }
    }
  })

  await providerConformance(t, 'karpenter (real control plane, component RBAC)', async () => {
    const world = await kubeWorld()
    const recorder = attributingWrites(createKarpenterProvider({ kubeConfig: await world.serviceAccountKubeConfig() }), world, SA_USER)
    let nodes = 0
    return {
      provider: recorder.provider,
      async makeNode () {
        nodes++
        // as Karpenter leaves them: the termination finalizer holds a deleted NodeClaim until the instance is gone
        return (await createKarpenterNode(world, `conformance-karpenter-${nodes}`, `conformance-claim-${nodes}`, { finalizer: true })).node
      },
      wasActedOn: async (node: V1Node, action: MachineAction) =>
        await recorder.actedOn(node.metadata?.name ?? '', { resource: 'nodeclaims', name: node.metadata?.ownerReferences?.[0]?.name ?? '' }, action),
      teardown: async () => {},
      supports: { reboot: 'unsupported' }
    }
  })
}
