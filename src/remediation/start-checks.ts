import type { V1PersistentVolume, V1Pod } from '@kubernetes/client-node'
import type { Cluster } from '../cluster.ts'
import { outOfServiceCause } from '../policy/budget.ts'
import { capacityBlock, placePods, requestsOf, type Room } from '../policy/capacity.ts'
import type { Block, PolicyConfig } from '../policy/config.ts'
import { classifyPod, controllerOf, protectedReason, type DrainSwitches, type PodClass, type PodFacts } from '../policy/pods.ts'
import type { Fleet } from './fleet.ts'
import type { RungAction } from './record.ts'
import type { NodeView } from './snapshot.ts'

/**
 * The checks right before a node is cordoned that need the cluster's pods: no pod whose data or
 * identity cannot survive is evicted (the node is not started at all), and the evictable pods fit
 * elsewhere. The decisions are the pure core's (policy/pods.ts, policy/capacity.ts); this gathers
 * what they read: owners, volumes, and what every node already runs.
 */
export type StartCheckDeps = {
  cluster: Cluster
  policy: PolicyConfig
  switches: DrainSwitches
  capacityCheck: boolean
}

/**
 * The PersistentVolume keeps its data on one machine: a local or hostPath volume, or one pinned to
 * this node only. Node-local CSI drivers pin with keys of their own (`topology.topolvm.io/node`,
 * `openebs.io/nodename`, …) whose value is the node's name: any key whose only allowed value is
 * this node's name or hostname (or `metadata.name` as a field) pins it.
 */
function onThisMachine (volume: V1PersistentVolume, names: ReadonlySet<string>): boolean {
  if (volume.spec?.local !== undefined || volume.spec?.hostPath !== undefined) return true
  const terms = volume.spec?.nodeAffinity?.required?.nodeSelectorTerms ?? []
  const pins = (req: { operator: string, values?: string[] }) => req.operator === 'In' && req.values !== undefined && req.values.length > 0 && req.values.every(value => names.has(value))
  return terms.length > 0 && terms.every(term => [...(term.matchExpressions ?? []), ...(term.matchFields ?? [])].some(pins))
}

type Owners = Map<string, Promise<PodFacts['controller']>>

async function factsOf (cluster: Cluster, pod: V1Pod, node: NodeView, owners: Owners): Promise<PodFacts> {
  const namespace = pod.metadata!.namespace!
  const owner = controllerOf(pod)
  // One lookup per controller, however many of its pods the node runs.
  const ownerKey = owner === undefined ? '' : `${namespace}/${owner.kind}/${owner.name}/${owner.uid}`
  let lookup = owners.get(ownerKey)
  if (lookup === undefined && owner !== undefined) owners.set(ownerKey, lookup = cluster.controllerExists(namespace, owner))
  const controller = owner === undefined ? 'none' : await lookup!
  const names = new Set([node.name, node.labels['kubernetes.io/hostname'] ?? node.name])
  const localVolumes: string[] = []
  for (const volume of pod.spec?.volumes ?? []) {
    const claimName = volume.persistentVolumeClaim?.claimName
    if (claimName === undefined) continue
    const claim = await cluster.getClaim(namespace, claimName)
    const bound = claim?.spec?.volumeName
    const pv = bound === undefined ? undefined : await cluster.getVolume(bound)
    if (pv !== undefined && onThisMachine(pv, names)) localVolumes.push(`${volume.name} (PersistentVolume ${bound})`)
  }
  return { pod, controller, localVolumes }
}

/** Every pod of the node classified. Owners and volumes are looked up only for pods that could be evicted. */
export async function classifyPods (deps: Pick<StartCheckDeps, 'cluster' | 'switches'>, pods: readonly V1Pod[], node: NodeView, action: RungAction): Promise<PodClass[]> {
  const owners: Owners = new Map()
  return await Promise.all(pods.map(async pod => {
    const quick = classifyPod({ pod, controller: 'exists', localVolumes: [] }, action, deps.switches)
    if (quick.kind !== 'evictable') return quick
    return classifyPod(await factsOf(deps.cluster, pod, node, owners), action, deps.switches)
  }))
}

/** The nodes the evicted pods could go to, with what is free on each. */
function roomsFor (candidate: string, fleet: Fleet, allPods: readonly V1Pod[], config: PolicyConfig): Room[] {
  const requested = new Map<string, { cpu: number, memory: number, pods: number }>()
  for (const pod of allPods) {
    const at = pod.spec?.nodeName
    if (at === undefined || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') continue
    const need = requestsOf(pod)
    const sum = requested.get(at) ?? { cpu: 0, memory: 0, pods: 0 }
    requested.set(at, { cpu: sum.cpu + need.cpu, memory: sum.memory + need.memory, pods: sum.pods + need.pods })
  }
  const rooms: Room[] = []
  for (const node of fleet.values()) {
    if (node.name === candidate || outOfServiceCause(node, config) !== undefined) continue
    const used = requested.get(node.name) ?? { cpu: 0, memory: 0, pods: 0 }
    rooms.push({ name: node.name, labels: node.labels, taints: node.taints, free: { cpu: node.allocatable.cpu - used.cpu, memory: node.allocatable.memory - used.memory, pods: node.allocatable.pods - used.pods } })
  }
  return rooms
}

export async function startChecks (deps: StartCheckDeps, node: NodeView, action: RungAction, fleet: Fleet): Promise<Block | undefined> {
  const pods = await deps.cluster.listPodsOnNode(node.name)
  const classes = await classifyPods(deps, pods, node, action)
  const held = protectedReason(classes)
  if (held !== undefined) {
    const reasons = classes.filter(c => c.kind === 'protected')
    return { rule: 'protected-pods', reason: held, detail: { pods: reasons.length, switches: [...new Set(reasons.map(c => c.allowedBy ?? 'remove the opt-out annotation'))].join(', ') } }
  }
  if (!deps.capacityCheck) return undefined
  const evictable = new Set(classes.filter(c => c.kind === 'evictable').map(c => c.pod))
  const leaving = pods.filter(pod => evictable.has(`${pod.metadata?.namespace}/${pod.metadata?.name}`))
  if (leaving.length === 0) return undefined
  const { unplaced, shortfall } = placePods(leaving, roomsFor(node.name, fleet, await deps.cluster.listAllPods(), deps.policy))
  return capacityBlock(unplaced, shortfall)
}
