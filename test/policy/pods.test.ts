import type { V1Pod } from '@kubernetes/client-node'
import t from 'tap'
import { classifyPod, evictionOrder, protectedReason, type DrainSwitches } from '../../src/policy/pods.ts'

const off: DrainSwitches = { evictUnmanaged: false, deleteEmptyDirData: false, allowLocalDataLoss: false, excludeAnnotation: 'x.io/drain-exclude' }
const on: DrainSwitches = { ...off, evictUnmanaged: true, deleteEmptyDirData: true, allowLocalDataLoss: true }

/** A pod shaped like the API server returns it. */
function pod (extra: { owner?: string, annotations?: Record<string, string>, labels?: Record<string, string>, phase?: string, volumes?: V1Pod['spec'] extends infer S ? S extends { volumes?: infer V } ? V : never : never, priority?: number, name?: string } = {}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: extra.name ?? 'p',
      namespace: 'default',
      uid: 'u',
      annotations: extra.annotations ?? {},
      labels: extra.labels ?? {},
      ...(extra.owner === undefined ? {} : { ownerReferences: [{ apiVersion: extra.owner === 'Job' ? 'batch/v1' : 'apps/v1', kind: extra.owner, name: 'o', uid: 'ou', controller: true, blockOwnerDeletion: true }] })
    },
    spec: { nodeName: 'n', containers: [{ name: 'c', image: 'i' }], ...(extra.volumes === undefined ? {} : { volumes: extra.volumes }), ...(extra.priority === undefined ? {} : { priority: extra.priority }) },
    status: { phase: extra.phase ?? 'Running' }
  }
}
const managed = (p: V1Pod, localVolumes: string[] = []) => ({ pod: p, controller: 'exists' as const, localVolumes })

t.test('skipped, in kubectl\'s order: finished, DaemonSet, mirror, our opt-out, Cluster API\'s label', async t => {
  t.match(classifyPod(managed(pod({ phase: 'Succeeded' })), 'replace', off), { kind: 'skipped', reason: 'finished (Succeeded)' })
  t.match(classifyPod(managed(pod({ owner: 'DaemonSet' })), 'replace', off), { kind: 'skipped', reason: 'DaemonSet pod' })
  t.match(classifyPod(managed(pod({ annotations: { 'kubernetes.io/config.mirror': 'h' } })), 'replace', off), { kind: 'skipped', reason: 'mirror pod' })
  t.match(classifyPod(managed(pod({ owner: 'ReplicaSet', annotations: { 'x.io/drain-exclude': 'true' } })), 'replace', off), { kind: 'skipped', reason: /opted out by x.io\/drain-exclude/ })
  t.match(classifyPod(managed(pod({ owner: 'ReplicaSet', labels: { 'cluster.x-k8s.io/drain': 'skip' } })), 'replace', off), { kind: 'skipped' })
  t.match(classifyPod(managed(pod({ owner: 'ReplicaSet', annotations: { 'x.io/drain-exclude': 'false' } })), 'replace', off), { kind: 'evictable' })
})

t.test('the ecosystem\'s opt-outs protect a pod whatever the switches say', async t => {
  for (const [key, value] of [['karpenter.sh/do-not-disrupt', 'true'], ['karpenter.sh/do-not-evict', 'true'], ['cluster-autoscaler.kubernetes.io/safe-to-evict', 'false']]) {
    const c = classifyPod(managed(pod({ owner: 'ReplicaSet', annotations: { [key!]: value! } })), 'reboot', on)
    t.match(c, { kind: 'protected', reason: new RegExp(`${key}: "${value}"`) }, key!)
    t.equal(c.allowedBy, undefined, 'no switch allows it')
  }
  t.match(classifyPod(managed(pod({ owner: 'ReplicaSet', annotations: { 'cluster-autoscaler.kubernetes.io/safe-to-evict': 'true' } })), 'reboot', off), { kind: 'evictable' })
})

t.test('a pod nothing would recreate is protected unless EVICT_UNMANAGED_PODS (kubectl --force)', async t => {
  t.match(classifyPod({ pod: pod(), controller: 'none', localVolumes: [] }, 'reboot', off), { kind: 'protected', reason: /no controller/, allowedBy: 'EVICT_UNMANAGED_PODS' })
  t.match(classifyPod({ pod: pod({ owner: 'ReplicaSet' }), controller: 'gone', localVolumes: [] }, 'reboot', off), { kind: 'protected', reason: /controller ReplicaSet\/o no longer exists/ })
  t.match(classifyPod({ pod: pod(), controller: 'none', localVolumes: [] }, 'reboot', { ...off, evictUnmanaged: true }), { kind: 'evictable' })
  t.match(classifyPod({ pod: pod({ owner: 'Rollout' }), controller: 'unknown', localVolumes: [] }, 'reboot', off), { kind: 'evictable' }, 'a kind we cannot look up is trusted to exist')
})

t.test('emptyDir data is protected unless DELETE_EMPTYDIR_DATA; memory-backed and declared-losable volumes are not data', async t => {
  const withDisk = pod({ owner: 'ReplicaSet', volumes: [{ name: 'cache', emptyDir: {} }, { name: 'shm', emptyDir: { medium: 'Memory' } }] })
  t.match(classifyPod(managed(withDisk), 'reboot', off), { kind: 'protected', reason: 'emptyDir data would be lost (cache)', allowedBy: 'DELETE_EMPTYDIR_DATA' })
  t.match(classifyPod(managed(withDisk), 'reboot', { ...off, deleteEmptyDirData: true }), { kind: 'evictable' })
  const declared = pod({ owner: 'ReplicaSet', annotations: { 'cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes': 'cache' }, volumes: [{ name: 'cache', emptyDir: {} }] })
  t.match(classifyPod(managed(declared), 'reboot', off), { kind: 'evictable' })
  t.match(classifyPod(managed(pod({ owner: 'ReplicaSet', volumes: [{ name: 'shm', emptyDir: { medium: 'Memory' } }] })), 'reboot', off), { kind: 'evictable' })
})

t.test('data on the machine: a reboot keeps it, a replace destroys it (unless ALLOW_LOCAL_DATA_LOSS)', async t => {
  const sts = pod({ owner: 'StatefulSet' })
  const local = ['data (PersistentVolume local-pg-0)']
  t.match(classifyPod(managed(sts, local), 'reboot', off), { kind: 'evictable' })
  t.match(classifyPod(managed(sts, local), 'quarantine', off), { kind: 'evictable' }, 'quarantine keeps the machine')
  t.match(classifyPod(managed(sts, local), 'replace', off), { kind: 'protected', reason: /data on this machine .* would be destroyed by replace; a reboot keeps it/, allowedBy: 'ALLOW_LOCAL_DATA_LOSS' })
  t.match(classifyPod(managed(sts, local), 'replace', { ...off, allowLocalDataLoss: true }), { kind: 'evictable' })
})

t.test('eviction order: lower priority first, then namespace/name', async t => {
  const pods = [pod({ name: 'b', priority: 0 }), pod({ name: 'crit', priority: 1000 }), pod({ name: 'a', priority: 0 }), pod({ name: 'low', priority: -5 })]
  t.same(pods.sort(evictionOrder).map(p => p.metadata!.name), ['low', 'a', 'b', 'crit'])
})

t.test('the reason lists the protected pods, at most ten by name', async t => {
  t.equal(protectedReason([{ pod: 'd/a', kind: 'evictable', reason: 'evictable' }]), undefined)
  const many = Array.from({ length: 12 }, (_, i) => ({ pod: `d/p${i}`, kind: 'protected' as const, reason: 'no controller: nothing would recreate it' }))
  const reason = protectedReason(many)!
  t.match(reason, /^12 pods cannot be evicted safely, so the node is not cordoned: d\/p0: no controller/)
  t.match(reason, /; and 2 more$/)
})
