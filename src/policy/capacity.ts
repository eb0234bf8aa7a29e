import type { V1Container, V1LabelSelector, V1NodeSelectorRequirement, V1Pod, V1Toleration } from '@kubernetes/client-node'
import type { Taint } from '../remediation/snapshot.ts'
import { parseQuantity } from '../quantity.ts'
import type { Block } from './config.ts'

/**
 * Room for the pods: before a node is cordoned, its evictable pods must fit on the nodes that
 * remain schedulable and Ready. A first-fit estimate, as the README says — not the scheduler: it
 * honours resource requests (cpu, memory, pod count) against allocatable minus what is already
 * requested there, nodeSelector, required node affinity, and NoSchedule/NoExecute taints with
 * tolerations. It does not model pod (anti-)affinity, topology spread, ports or volumes, so
 * "fits" can still leave a pod Pending; "does not fit" means the drain would strand pods.
 */
export type Resources = { cpu: number, memory: number, pods: number }

export type Room = {
  name: string
  labels: Readonly<Record<string, string>>
  taints: readonly Taint[]
  /** Allocatable minus what the pods bound there request. */
  free: Resources
}

/** What a pod asks for, as the scheduler counts it: the larger of its containers' sum and its largest init container. */
export function requestsOf (pod: V1Pod): Resources {
  const sum = (list: V1Container[] | undefined, key: 'cpu' | 'memory') => (list ?? []).reduce((total, c) => total + (parseQuantity(c.resources?.requests?.[key]) || 0), 0)
  const max = (list: V1Container[] | undefined, key: 'cpu' | 'memory') => (list ?? []).reduce((top, c) => Math.max(top, parseQuantity(c.resources?.requests?.[key]) || 0), 0)
  const overhead = (key: 'cpu' | 'memory') => parseQuantity(pod.spec?.overhead?.[key]) || 0
  return {
    cpu: Math.max(sum(pod.spec?.containers, 'cpu'), max(pod.spec?.initContainers, 'cpu')) + overhead('cpu'),
    memory: Math.max(sum(pod.spec?.containers, 'memory'), max(pod.spec?.initContainers, 'memory')) + overhead('memory'),
    pods: 1
  }
}

function matchesExpression (labels: Readonly<Record<string, string>>, req: V1NodeSelectorRequirement): boolean {
  const value = labels[req.key]
  const values = req.values ?? []
  switch (req.operator) {
    case 'In': return value !== undefined && values.includes(value)
    case 'NotIn': return value === undefined || !values.includes(value)
    case 'Exists': return value !== undefined
    case 'DoesNotExist': return value === undefined
    case 'Gt': return value !== undefined && Number(value) > Number(values[0])
    case 'Lt': return value !== undefined && Number(value) < Number(values[0])
    default: return false
  }
}

/** A label selector (a PodDisruptionBudget's): matchLabels and matchExpressions, all of them. An empty one matches nothing, as the disruption controller reads it. */
export function selectorMatches (selector: V1LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (selector === undefined || (selector.matchLabels === undefined && selector.matchExpressions === undefined)) return false
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (labels[key] !== value) return false
  return (selector.matchExpressions ?? []).every(req => matchesExpression(labels, req))
}

/** nodeSelector and required node affinity (terms OR-ed, expressions AND-ed). */
export function nodeMatches (pod: V1Pod, labels: Readonly<Record<string, string>>): boolean {
  for (const [key, value] of Object.entries(pod.spec?.nodeSelector ?? {})) if (labels[key] !== value) return false
  const terms = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms
  if (terms === undefined || terms.length === 0) return true
  return terms.some(term => (term.matchExpressions ?? []).every(req => matchesExpression(labels, req)))
}

function tolerates (tolerations: readonly V1Toleration[], taint: Taint): boolean {
  return tolerations.some(t => {
    if (t.effect !== undefined && t.effect !== '' && t.effect !== taint.effect) return false
    if (t.operator === 'Exists') return t.key === undefined || t.key === '' || t.key === taint.key
    return t.key === taint.key && (t.value ?? '') === (taint.value ?? '')
  })
}

export function toleratesAll (pod: V1Pod, taints: readonly Taint[]): boolean {
  const tolerations = pod.spec?.tolerations ?? []
  return taints.every(taint => (taint.effect !== 'NoSchedule' && taint.effect !== 'NoExecute') || tolerates(tolerations, taint))
}

const fitsIn = (need: Resources, free: Resources) => need.cpu <= free.cpu && need.memory <= free.memory && need.pods <= free.pods

/**
 * First-fit, largest pods first: places each pod on the first node with room that it may run on.
 * Returns the pods that found none and what they lack in all.
 */
export function placePods (pods: readonly V1Pod[], rooms: readonly Room[]): { unplaced: V1Pod[], shortfall: Resources } {
  const free = rooms.map(room => ({ room, left: { ...room.free } }))
  const sized = pods.map(pod => ({ pod, need: requestsOf(pod) })).sort((a, b) => b.need.memory - a.need.memory || b.need.cpu - a.need.cpu)
  const unplaced: V1Pod[] = []
  const shortfall: Resources = { cpu: 0, memory: 0, pods: 0 }
  for (const { pod, need } of sized) {
    const target = free.find(f => fitsIn(need, f.left) && nodeMatches(pod, f.room.labels) && toleratesAll(pod, f.room.taints))
    if (target === undefined) {
      unplaced.push(pod)
      shortfall.cpu += need.cpu
      shortfall.memory += need.memory
      shortfall.pods += 1
      continue
    }
    target.left.cpu -= need.cpu
    target.left.memory -= need.memory
    target.left.pods -= 1
  }
  return { unplaced, shortfall }
}

export function capacityBlock (unplaced: readonly V1Pod[], shortfall: Resources): Block | undefined {
  if (unplaced.length === 0) return undefined
  return {
    rule: 'capacity',
    reason: 'the pods to evict do not fit on the remaining schedulable, Ready nodes (CAPACITY_CHECK)',
    detail: { pods: unplaced.length, cpu: Number(shortfall.cpu.toFixed(3)), memoryBytes: Math.round(shortfall.memory), first: `${unplaced[0]!.metadata?.namespace}/${unplaced[0]!.metadata?.name}` }
  }
}
