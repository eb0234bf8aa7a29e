import t from 'tap'
import { pino } from 'pino'
import { keptAnnotations, leanNode } from '../../src/kube/lean-node.ts'
import { createMetrics } from '../../src/metrics.ts'
import { encodeRecord } from '../../src/remediation/record.ts'
import { createNodeStore } from '../../src/remediation/store.ts'
import type { Cluster } from '../../src/cluster.ts'
import { policy, record, T0 } from '../support/core.ts'
import { kwokNode, realNode } from './fixtures/real-node.ts'

const ours = keptAnnotations('self-healing-controller.io')

function isDeeplyFrozen (value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return true
  return Object.isFrozen(value) && Object.values(value).every(isDeeplyFrozen)
}

t.test('a real kubelet Node becomes exactly what decisions read', async t => {
  const node = realNode(7, {
    annotations: {
      'self-healing-controller.io/phase': 'draining',
      'karpenter.sh/do-not-disrupt': 'true',
      'cluster-autoscaler.kubernetes.io/scale-down-disabled': 'true',
      'cluster.x-k8s.io/machine': 'md-0-abc',
      'self-healing-controller.io.evil/phase': 'not ours: another prefix'
    }
  })
  const source = structuredClone(node)
  const lean = leanNode(node, ours)
  t.strictSame(lean, {
    metadata: {
      name: 'ip-10-0-0-7.ec2.internal',
      uid: node.metadata!.uid,
      resourceVersion: '1000007',
      creationTimestamp: '2025-03-01T08:00:00Z',
      labels: node.metadata!.labels,
      annotations: {
        'self-healing-controller.io/phase': 'draining',
        'karpenter.sh/do-not-disrupt': 'true',
        'cluster-autoscaler.kubernetes.io/scale-down-disabled': 'true',
        'cluster.x-k8s.io/machine': 'md-0-abc'
      }
    },
    spec: { providerID: node.spec!.providerID },
    status: {
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }],
      nodeInfo: { bootID: node.status!.nodeInfo!.bootID },
      allocatable: { cpu: '15890m', memory: '63436380Ki', pods: '234' }
    }
  })
  t.equal(Object.keys(lean.metadata!.labels!).length, 20, 'every label is kept')
  t.notOk('managedFields' in lean.metadata!, 'managedFields are gone')
  t.ok(isDeeplyFrozen(lean), 'frozen all the way down')
  t.throws(() => { (lean.metadata!.labels as Record<string, string>).pool = 'other' }, TypeError, 'so nobody edits a shared node')
  t.strictSame(node, source, 'the node it was made from is left as it was')
  t.notOk(Object.isFrozen(node.metadata!.labels), 'and is not frozen')
  t.ok(JSON.stringify(lean).length * 10 < JSON.stringify(node).length, `under a tenth of the JSON (${JSON.stringify(lean).length} of ${JSON.stringify(node).length} bytes)`)
})

t.test('taints, unschedulable and deletionTimestamp are kept; a node without them has none', async t => {
  const base = kwokNode(3)
  const taint = { key: 'node.kubernetes.io/unreachable', effect: 'NoExecute', timeAdded: '2025-03-02T09:31:00Z' as unknown as Date }
  const lean = leanNode({
    ...base,
    metadata: { ...base.metadata, deletionTimestamp: '2025-03-02T10:00:00Z' as unknown as Date },
    spec: { ...base.spec, unschedulable: true, taints: [taint] }
  }, ours)
  t.strictSame(lean.spec, { unschedulable: true, providerID: 'kwok:///us-east-1a/kwok-3', taints: [taint] })
  t.equal(lean.metadata?.deletionTimestamp, '2025-03-02T10:00:00Z')
  t.notOk('annotations' in lean.metadata!, 'KWOK\'s annotations are none of ours: no annotations object at all')

  t.strictSame(leanNode({ metadata: { name: 'bare' } }, ours), { metadata: { name: 'bare' } }, 'nothing invented for a node that has nothing')
})

t.test('a heartbeat changes nothing but the resourceVersion', async t => {
  const before = realNode(1)
  const after = realNode(1)
  after.metadata!.resourceVersion = '2000001'
  for (const condition of after.status!.conditions!) condition.lastHeartbeatTime = '2025-03-02T09:31:00Z' as unknown as Date
  after.status!.images!.reverse()
  const [a, b] = [leanNode(before, ours), leanNode(after, ours)]
  t.not(a.metadata?.resourceVersion, b.metadata?.resourceVersion)
  t.strictSame({ ...b, metadata: { ...b.metadata, resourceVersion: a.metadata?.resourceVersion } }, a)
})

t.test('the store reads the same view from the lean node as from the full one', async t => {
  const prefix = 'self-healing-controller.io'
  const store = createNodeStore({ cluster: {} as Cluster, annotationPrefix: prefix, policy: policy({ poolLabel: 'pool' }), metrics: createMetrics(), log: pino({ level: 'silent' }) })
  const persisted = record({ phase: 'draining', since: new Date(T0).toISOString(), reason: 'disk saturated' })
  const nodes = [
    realNode(11, { annotations: { [`${prefix}/state`]: encodeRecord(persisted), [`${prefix}/phase`]: 'draining' } }),
    realNode(12),
    kwokNode(13, { annotations: { [`${prefix}/state`]: '{not json' } })
  ]
  nodes[1]!.spec!.unschedulable = true
  nodes[1]!.status!.conditions!.find(c => c.type === 'Ready')!.status = 'Unknown'
  for (const node of nodes) {
    const full = store.toView(node)
    t.strictSame(store.toView(leanNode(node, keptAnnotations(prefix))), full, `${node.metadata!.name}: ${full.pool}, unschedulable ${full.unschedulable}, ready ${full.ready}, record ${full.record?.phase ?? full.recordError ?? 'none'}`)
  }
})
