import t from 'tap'
import { binariesForTest, waitFor } from '../support/controlplane.ts'
import { notification, startScenario, type Scenario } from '../support/scenario.ts'

/**
 * A drain that loses no data, on a real control plane with KWOK nodes and the deploy/
 * ServiceAccount: pods nothing would recreate, emptyDir data, the ecosystem's opt-outs and local
 * PersistentVolumes hold a node back until their switch (or the removal of the opt-out) allows it.
 */
const bins = await binariesForTest()
const toleration = { key: 'kwok.x-k8s.io/node', operator: 'Exists', effect: 'NoSchedule' }

async function apply (s: Scenario, objects: unknown[]) {
  const result = await s.cp.kubectl(['apply', '-f', '-'], { input: objects.map(o => JSON.stringify(o)).join('\n') })
  if (result.code !== 0) throw new Error(result.stderr)
}

/** A Deployment kept to a pool (or, given a node name, to that node: then it can run nowhere else). */
const deployment = (name: string, where: string, replicas: number, pod: Record<string, unknown> = {}, meta: Record<string, unknown> = {}) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, namespace: 'default' },
  spec: {
    replicas,
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name }, ...meta },
      spec: { nodeSelector: where.includes('-') ? { 'kubernetes.io/hostname': where } : { pool: where }, tolerations: [toleration], containers: [{ name: 'app', image: 'registry.example/app:1' }], ...pod }
    }
  }
})

const evictionsOf = (s: Scenario) => s.mutationsByController().filter(e => e.objectRef?.subresource === 'eviction')

t.test('a drain that loses no data', { skip: bins.skip ?? false, timeout: 600_000 }, async t => {
  const s = await startScenario(bins.binDir!)
  t.teardown(() => s.stop())
  const [node, ...others] = await s.nodes('data', 3)
  // Everything starts on one node (the others cordoned meanwhile) but may run on any of the pool.
  for (const other of others) await s.cp.kubectl(['cordon', other])
  await apply(s, [
    deployment('web', 'data', 3),
    deployment('cache', 'data', 1, { volumes: [{ name: 'scratch', emptyDir: {} }], containers: [{ name: 'app', image: 'registry.example/app:1', volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }] }] }),
    deployment('batch', 'data', 1, {}, { annotations: { 'karpenter.sh/do-not-disrupt': 'true' } }),
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'bare', namespace: 'default' }, spec: { nodeName: node, tolerations: [toleration], containers: [{ name: 'app', image: 'registry.example/app:1' }] } },
    { apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: 'local-pg' }, spec: { capacity: { storage: '10Gi' }, accessModes: ['ReadWriteOnce'], storageClassName: '', local: { path: '/mnt/ssd' }, nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [node] }] }] } } } },
    { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'pg-data', namespace: 'default' }, spec: { accessModes: ['ReadWriteOnce'], storageClassName: '', volumeName: 'local-pg', resources: { requests: { storage: '10Gi' } } } },
    {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'pg', namespace: 'default' },
      spec: { serviceName: 'pg', replicas: 1, selector: { matchLabels: { app: 'pg' } }, template: { metadata: { labels: { app: 'pg' } }, spec: { tolerations: [toleration], containers: [{ name: 'pg', image: 'registry.example/pg:1' }], volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'pg-data' } }] } } }
    }
  ])
  for (const app of ['web', 'cache', 'batch', 'pg']) await waitFor(`${app} running on ${node}`, async () => (await s.pods(app)).some(p => p.status?.phase === 'Running' && p.spec?.nodeName === node), { timeoutMs: 90_000 })
  for (const other of others) await s.cp.kubectl(['uncordon', other])
  const alert = notification([node!])

  await t.test('by default the node is not cordoned; the answer and the Event list every protected pod', async t => {
    const controller = await s.controller('safe-a')
    const answer = await controller.post('/v1/alerts', alert)
    t.match(answer.body.decisions, [{ action: 'deferred', rule: 'protected-pods' }])
    const reason: string = answer.body.decisions[0].reason
    t.match(reason, /default\/bare: no controller/)
    t.match(reason, /default\/cache-[a-z0-9-]+: emptyDir data would be lost \(scratch\)/)
    t.match(reason, /default\/batch-[a-z0-9-]+: karpenter.sh\/do-not-disrupt: "true"/)
    t.notMatch(reason, /pg-0/, 'a local volume is no obstacle to the ladder\'s first rung, a reboot')
    await waitFor('the Event', async () => (await s.cp.kubectl(['describe', 'node', node!])).stdout.includes('RemediationDeferred'), { timeoutMs: 10_000 })
    t.match((await s.cp.kubectl(['describe', 'node', node!])).stdout, /cannot be evicted safely/)
    t.same(await s.cordoned([node!]), [], 'never cordoned')
    t.same(evictionsOf(s), [], 'nothing evicted')
    await controller.kill('SIGTERM')
  })

  await t.test('each protection lifted in turn: the opt-out only by removing it, the others by their switch', async t => {
    const batch = (await s.pods('batch'))[0]!.metadata!.name!
    await s.cp.kubectl(['annotate', 'pod', '-n', 'default', batch, 'karpenter.sh/do-not-disrupt-'])
    // The alert is already recorded: each new controller re-checks the pending node on its first pass.
    const unmanaged = await s.controller('safe-b', { EVICT_UNMANAGED_PODS: 'true' })
    await waitFor('only the emptyDir pod left protected', async () => /^1 pod cannot be evicted safely.*cache-.*emptyDir/.test((await s.state(node!)).deferred?.reason ?? ''), { timeoutMs: 30_000 })
    t.match((await unmanaged.get(`/v1/nodes/${node}`)).body.deferred, { rule: 'protected-pods', detail: { pods: 1, switches: 'DELETE_EMPTYDIR_DATA' } })
    await unmanaged.kill('SIGTERM')
    await s.controller('safe-c', { EVICT_UNMANAGED_PODS: 'true', DELETE_EMPTYDIR_DATA: 'true', COOLDOWN: '0s' })
    await waitFor('drained and held (PROVIDER=none)', async () => await s.phase(node!) === 'failed', { timeoutMs: 90_000 })
    const evicted = evictionsOf(s).map(e => e.objectRef?.name)
    for (const name of ['bare', 'pg-0', batch]) t.ok(evicted.includes(name), `${name} evicted once allowed`)
    t.ok(evicted.some(n => n?.startsWith('cache-')), 'the emptyDir pod evicted once allowed')
    await s.cp.kubectl(['uncordon', node!])
    await waitFor('released', async () => await s.phase(node!) === 'cancelled', { timeoutMs: 20_000 })
  })

  await t.test('a local volume: a replace is deferred, the data would be destroyed', async t => {
    await waitFor('pg-0 back on its node (its volume pins it)', async () => (await s.pods('pg')).some(p => p.status?.phase === 'Running' && p.spec?.nodeName === node), { timeoutMs: 90_000 })
    const controller = await s.controller('safe-d', { COOLDOWN: '0s' })
    const replace = notification([node!], { alertname: 'NodeReplaceMe' })
    replace.alerts[0]!.labels.remediation = 'replace'
    const answer = await controller.post('/v1/alerts', replace)
    t.match(answer.body.decisions, [{ rule: 'protected-pods', reason: /pg-0: data on this machine \(data \(PersistentVolume local-pg\)\) would be destroyed by replace; a reboot keeps it/ }])
    await controller.kill('SIGTERM')
  })

  await t.test('a pool whose other nodes are full: deferred for capacity, with the shortfall', async t => {
    const full = ['full-1', 'full-2']
    await s.cp.createFakeNodes(full.map((name, i) => ({ name, labels: { pool: 'full', 'topology.kubernetes.io/zone': i === 0 ? 'zone-a' : 'zone-b' }, allocatable: { cpu: '4', memory: '8Gi', pods: '110' } })))
    const hungry = (name: string, at: string) => deployment(name, at, 1, { containers: [{ name: 'app', image: 'registry.example/app:1', resources: { requests: { cpu: '3', memory: '1Gi' } } }] })
    await apply(s, [hungry('hog-1', 'full-1'), hungry('hog-2', 'full-2')])
    for (const app of ['hog-1', 'hog-2']) await waitFor(`${app} running`, async () => (await s.pods(app)).some(p => p.status?.phase === 'Running'), { timeoutMs: 60_000 })
    const controller = await s.controller('safe-e', { POOL_MAX_UNAVAILABLE: '2', BREAKER_MIN_NODES: '10' })
    const answer = await controller.post('/v1/alerts', notification(['full-1']))
    t.match(answer.body.decisions, [{ rule: 'capacity', reason: /do not fit on the remaining schedulable, Ready nodes/ }])
    t.ok(answer.body.decisions[0].detail.cpu >= 3, `shortfall in numbers: ${JSON.stringify(answer.body.decisions[0].detail)}`)
    t.same(await s.cordoned(full), [])
    await controller.kill('SIGTERM')
  })

  await t.test('five pods slow to terminate do not keep twenty others from being asked to leave', async t => {
    const [grace, spare] = await s.nodes('grace', 2)
    await s.cp.kubectl(['cordon', spare!])
    await apply(s, [
      deployment('quick', 'grace', 20),
      deployment('slow', 'grace', 5, { terminationGracePeriodSeconds: 60 }, { finalizers: ['example.com/hold'] })
    ])
    for (const app of ['quick', 'slow']) await waitFor(`${app} running`, async () => (await s.pods(app)).filter(p => p.status?.phase === 'Running' && p.spec?.nodeName === grace).length === (app === 'quick' ? 20 : 5), { timeoutMs: 120_000 })
    await s.cp.kubectl(['uncordon', spare!])
    const before = evictionsOf(s).length
    const controller = await s.controller('safe-f', { POOL_MAX_UNAVAILABLE: '2', DRAIN_TIMEOUT: '60s' })
    await controller.post('/v1/alerts', notification([grace!]))
    await waitFor('25 evictions asked for', () => evictionsOf(s).length - before >= 25, { timeoutMs: 60_000 })
    const times = evictionsOf(s).slice(before).map(e => Date.parse(e.requestReceivedTimestamp!))
    const spread = Math.max(...times) - Math.min(...times)
    t.ok(spread < 10_000, `all 25 asked to leave within the first seconds (${spread} ms between the first and the last)`)
    await controller.kill('SIGTERM')
    for (const pod of (await s.pods('slow'))) await s.cp.kubectl(['patch', 'pod', '-n', 'default', pod.metadata!.name!, '--type=merge', '-p', '{"metadata":{"finalizers":null}}'])
  })
})
