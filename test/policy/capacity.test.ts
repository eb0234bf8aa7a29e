import type { V1Pod } from '@kubernetes/client-node'
import t from 'tap'
import { capacityBlock, nodeMatches, placePods, requestsOf, selectorMatches, toleratesAll, type Room } from '../../src/policy/capacity.ts'

const gi = 2 ** 30
const pod = (name: string, cpu: string, memory: string, spec: Partial<NonNullable<V1Pod['spec']>> = {}): V1Pod => ({
  metadata: { name, namespace: 'd' },
  spec: { containers: [{ name: 'c', resources: { requests: { cpu, memory } } }], ...spec }
})
const room = (name: string, cpu: number, memoryGi: number, extra: Partial<Room> = {}): Room => ({ name, labels: { pool: 'app' }, taints: [], free: { cpu, memory: memoryGi * gi, pods: 110 }, ...extra })

t.test('requests are counted as the scheduler does: containers summed, the largest init container, overhead', async t => {
  const p = pod('p', '500m', '1Gi', {
    containers: [{ name: 'a', resources: { requests: { cpu: '250m', memory: '512Mi' } } }, { name: 'b', resources: { requests: { cpu: '250m', memory: '512Mi' } } }],
    initContainers: [{ name: 'i', resources: { requests: { cpu: '2', memory: '256Mi' } } }],
    overhead: { cpu: '100m' }
  })
  t.same(requestsOf(p), { cpu: 2.1, memory: gi, pods: 1 })
})

t.test('first fit, largest first; what does not fit is named with the shortfall', async t => {
  const pods = [pod('small', '1', '1Gi'), pod('big', '2', '6Gi'), pod('mid', '1', '3Gi')]
  const fits = placePods(pods, [room('a', 4, 8), room('b', 4, 4)])
  t.same(fits.unplaced, [])
  const tight = placePods(pods, [room('a', 4, 6), room('b', 1, 2)])
  t.same(tight.unplaced.map(p => p.metadata!.name), ['mid'])
  t.same(tight.shortfall, { cpu: 1, memory: 3 * gi, pods: 1 })
  t.match(capacityBlock(tight.unplaced, tight.shortfall), { rule: 'capacity', detail: { pods: 1, cpu: 1, memoryBytes: 3 * gi, first: 'd/mid' } })
  t.equal(capacityBlock([], { cpu: 0, memory: 0, pods: 0 }), undefined)
  t.same(placePods([pod('p', '0', '0')], [room('full', 4, 4, { free: { cpu: 4, memory: 4 * gi, pods: 0 } })]).unplaced.length, 1, 'the pod count is a resource too')
})

t.test('nodeSelector and required node affinity', async t => {
  t.ok(nodeMatches(pod('p', '0', '0', { nodeSelector: { pool: 'app' } }), { pool: 'app' }))
  t.notOk(nodeMatches(pod('p', '0', '0', { nodeSelector: { pool: 'data' } }), { pool: 'app' }))
  const affinity = (operator: string, values?: string[]) => pod('p', '0', '0', { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator, ...(values === undefined ? {} : { values }) }] }] } } } })
  t.ok(nodeMatches(affinity('In', ['a', 'b']), { zone: 'b' }))
  t.notOk(nodeMatches(affinity('NotIn', ['b']), { zone: 'b' }))
  t.ok(nodeMatches(affinity('Exists'), { zone: 'c' }))
  t.notOk(nodeMatches(affinity('DoesNotExist'), { zone: 'c' }))
  t.ok(nodeMatches(affinity('Gt', ['3']), { zone: '4' }))
})

t.test('NoSchedule and NoExecute taints need a toleration; PreferNoSchedule does not', async t => {
  const taints = [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }]
  t.notOk(toleratesAll(pod('p', '0', '0'), taints))
  t.ok(toleratesAll(pod('p', '0', '0', { tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' }] }), taints))
  t.ok(toleratesAll(pod('p', '0', '0', { tolerations: [{ operator: 'Exists' }] }), taints), 'tolerates everything')
  t.notOk(toleratesAll(pod('p', '0', '0', { tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'cpu' }] }), taints))
  t.ok(toleratesAll(pod('p', '0', '0'), [{ key: 'soft', effect: 'PreferNoSchedule' }]))
  const placed = placePods([pod('p', '1', '1Gi')], [room('gpu', 8, 8, { taints })])
  t.equal(placed.unplaced.length, 1, 'a tainted node is no room for a pod that does not tolerate it')
})

t.test('label selectors of budgets: matchLabels and matchExpressions; an empty selector matches nothing', async t => {
  t.ok(selectorMatches({ matchLabels: { app: 'web' } }, { app: 'web', tier: 'x' }))
  t.notOk(selectorMatches({ matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['x'] }] }, { app: 'web', tier: 'x' }))
  t.notOk(selectorMatches({}, { app: 'web' }))
  t.notOk(selectorMatches(undefined, { app: 'web' }))
})
