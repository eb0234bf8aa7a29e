import type { V1Pod } from '@kubernetes/client-node'
import type { RungAction } from '../remediation/record.ts'

/**
 * Which pods a drain may evict, decided before the node is cordoned so that nothing is
 * half-done: kubectl drain's filters (in its order), the ecosystem's opt-outs, and data that
 * would not survive. Every pod gets a kind and a reason:
 * - `skipped`: stays on the node and does not stop the drain (DaemonSet and mirror pods,
 *   finished pods, pods opted out of our drain);
 * - `protected`: evicting it could lose what cannot be rebuilt, so the node is not started at all
 *   unless a switch allows it (kubectl's `--force`, `--delete-emptydir-data`) — or never, for an
 *   explicit opt-out;
 * - `evictable`.
 */
export type DrainSwitches = {
  /** EVICT_UNMANAGED_PODS, like kubectl's --force: pods nothing recreates may be evicted. */
  evictUnmanaged: boolean
  /** DELETE_EMPTYDIR_DATA, like --delete-emptydir-data: emptyDir data may be lost. */
  deleteEmptyDirData: boolean
  /** ALLOW_LOCAL_DATA_LOSS: a node whose pods keep data on local volumes may be replaced. */
  allowLocalDataLoss: boolean
  /** Our own opt-out: pods annotated with it "true" are left in place. */
  excludeAnnotation: string
}

/** What the shell found out about a pod: whether its controller still exists, and its volumes' kinds. */
export type PodFacts = {
  pod: V1Pod
  /** `gone` when the controller named by the owner reference no longer exists; `unknown` for kinds we cannot look up. */
  controller: 'none' | 'exists' | 'gone' | 'unknown'
  /** Names of volumes whose data lives on this machine (local or hostPath PersistentVolumes, or ones pinned to this node). */
  localVolumes: readonly string[]
}

export type PodClass = {
  pod: string
  kind: 'evictable' | 'skipped' | 'protected'
  reason: string
  /** The switch that would allow a protected pod, when one would. */
  allowedBy?: 'EVICT_UNMANAGED_PODS' | 'DELETE_EMPTYDIR_DATA' | 'ALLOW_LOCAL_DATA_LOSS'
}

/** Pod annotations and labels the ecosystem uses to say "leave this pod alone". Never overridden by a switch. */
export const podOptOuts: ReadonlyArray<{ key: string, value: string, where: 'annotation' | 'label', by: string }> = [
  { key: 'karpenter.sh/do-not-disrupt', value: 'true', where: 'annotation', by: 'Karpenter' },
  { key: 'karpenter.sh/do-not-evict', value: 'true', where: 'annotation', by: 'Karpenter (legacy)' },
  { key: 'cluster-autoscaler.kubernetes.io/safe-to-evict', value: 'false', where: 'annotation', by: 'cluster-autoscaler' }
]

/** Cluster API's label: the pod is left in place by drains, as ours does for our own annotation. */
const clusterApiSkip = { key: 'cluster.x-k8s.io/drain', value: 'skip' }

export const podName = (pod: V1Pod) => `${pod.metadata?.namespace}/${pod.metadata?.name}`

/** The controller owner of a pod, as kubectl's GetControllerOf finds it. */
export function controllerOf (pod: V1Pod) {
  return pod.metadata?.ownerReferences?.find(owner => owner.controller === true)
}

/** emptyDir volumes whose data would be lost: not memory-backed, and not listed as losable by the autoscaler annotation. */
function emptyDirData (pod: V1Pod): string[] {
  const losable = new Set((pod.metadata?.annotations?.['cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes'] ?? '').split(',').map(v => v.trim()).filter(Boolean))
  return (pod.spec?.volumes ?? []).filter(v => v.emptyDir !== undefined && v.emptyDir.medium !== 'Memory' && !losable.has(v.name)).map(v => v.name)
}

export function classifyPod (facts: PodFacts, action: RungAction, switches: DrainSwitches): PodClass {
  const { pod } = facts
  const name = podName(pod)
  const annotations = pod.metadata?.annotations ?? {}
  const labels = pod.metadata?.labels ?? {}
  const is = (kind: PodClass['kind'], reason: string, allowedBy?: PodClass['allowedBy']): PodClass => allowedBy === undefined ? { pod: name, kind, reason } : { pod: name, kind, reason, allowedBy }
  const phase = pod.status?.phase
  if (phase === 'Succeeded' || phase === 'Failed') return is('skipped', `finished (${phase})`)
  const controller = controllerOf(pod)
  if (controller?.kind === 'DaemonSet') return is('skipped', 'DaemonSet pod')
  if (annotations['kubernetes.io/config.mirror'] !== undefined) return is('skipped', 'mirror pod')
  if (annotations[switches.excludeAnnotation] === 'true') return is('skipped', `opted out by ${switches.excludeAnnotation}`)
  if (labels[clusterApiSkip.key] === clusterApiSkip.value) return is('skipped', `opted out by ${clusterApiSkip.key}=${clusterApiSkip.value}`)
  for (const optOut of podOptOuts) {
    const value = optOut.where === 'annotation' ? annotations[optOut.key] : labels[optOut.key]
    if (value === optOut.value) return is('protected', `${optOut.key}: "${optOut.value}" (${optOut.by}); only removing the annotation allows it`)
  }
  if (!switches.evictUnmanaged && (facts.controller === 'none' || facts.controller === 'gone')) {
    return is('protected', facts.controller === 'none' ? 'no controller: nothing would recreate it' : `its controller ${controller?.kind}/${controller?.name} no longer exists: nothing would recreate it`, 'EVICT_UNMANAGED_PODS')
  }
  const emptyDirs = emptyDirData(pod)
  if (!switches.deleteEmptyDirData && emptyDirs.length > 0) return is('protected', `emptyDir data would be lost (${emptyDirs.join(', ')})`, 'DELETE_EMPTYDIR_DATA')
  if (facts.localVolumes.length > 0 && action === 'replace' && !switches.allowLocalDataLoss) {
    return is('protected', `data on this machine (${facts.localVolumes.join(', ')}) would be destroyed by replace; a reboot keeps it`, 'ALLOW_LOCAL_DATA_LOSS')
  }
  return is('evictable', 'evictable')
}

/**
 * The order of eviction: lower priority first (critical pods leave last, kubectl#1347), then by
 * namespace and name, so a drain is reproducible.
 */
export function evictionOrder (a: V1Pod, b: V1Pod): number {
  const pa = a.spec?.priority ?? 0
  const pb = b.spec?.priority ?? 0
  if (pa !== pb) return pa - pb
  const na = podName(a)
  const nb = podName(b)
  return na < nb ? -1 : na > nb ? 1 : 0
}

/** Why a node cannot be started: its protected pods, in words that change only when the pods do. */
export function protectedReason (classes: readonly PodClass[]): string | undefined {
  const held = classes.filter(c => c.kind === 'protected')
  if (held.length === 0) return undefined
  const shown = held.slice(0, 10).map(c => `${c.pod}: ${c.reason}`)
  const more = held.length > shown.length ? `; and ${held.length - shown.length} more` : ''
  return `${held.length} pod${held.length === 1 ? '' : 's'} cannot be evicted safely, so the node is not cordoned: ${shown.join('; ')}${more}`
}
