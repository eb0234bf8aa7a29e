import t from 'tap'
import type { V1Node } from '@kubernetes/client-node'
import { providerConformance } from './conformance.ts'
import type { MachineAction } from './conformance.ts'
import { noneProvider } from '../../src/providers/none.ts'
import { withRetries } from '../../src/providers/retry.ts'
import { nodeFor, startAwsWorld } from './aws-fixture.ts'
import { createSimProvider } from '../../src/sim/provider.ts'
import { seededSim } from '../support/sim.ts'

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
    teardown: async () => sim.close()
  }
})
