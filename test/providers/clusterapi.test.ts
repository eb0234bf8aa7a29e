import http from 'node:http'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node'
import type { V1Node } from '@kubernetes/client-node'
import { ProviderError } from '../../src/providers/provider.ts'
import type { ProviderAction, ProviderRequest } from '../../src/providers/provider.ts'
import {
  CLUSTER_NAME_ANNOTATION,
  CLUSTER_NAMESPACE_ANNOTATION,
  createClusterApiProvider,
  MACHINE_ANNOTATION,
  REMEDIATE_MACHINE_ANNOTATION,
  selectorMatches
} from '../../src/providers/clusterapi.ts'
import { RetriesExhaustedError, withRetries } from '../../src/providers/retry.ts'
import { binariesForTest } from '../support/controlplane.ts'
import { createCapiNode, CRDS, fakeApiServer, SA_USER, setUpClusterApi, startKubeWorld, unreachableKubeConfig } from './fixtures/kube-world.ts'
import type { CapiNodeOptions, KubeWorld } from './fixtures/kube-world.ts'

const GROUP = 'cluster.x-k8s.io'
const NS = 'capi-test'
const CLUSTER = 'c1'

const req = (node: V1Node, action: ProviderAction, remediationId: string, signal: AbortSignal = new AbortController().signal): ProviderRequest =>
  ({ node, action, remediationId, signal })

async function rejection (p: Promise<unknown>): Promise<unknown> {
  return p.then(() => { throw new Error('expected a rejection, got a result') }, (e: unknown) => e)
}

function annotatedNode (name: string, machine: string, namespace = NS): V1Node {
  return { metadata: { name, annotations: { [MACHINE_ANNOTATION]: machine, [CLUSTER_NAMESPACE_ANNOTATION]: namespace, [CLUSTER_NAME_ANNOTATION]: CLUSTER } }, spec: { providerID: `fake:///${name}` } }
}

// ---------- without a control plane ----------

t.test('selectorMatches: matchLabels and every matchExpressions operator', async t => {
  const labels = { pool: 'a', zone: 'z1' }
  t.ok(selectorMatches(undefined, labels), 'no selector matches everything')
  t.ok(selectorMatches({}, labels), 'an empty selector matches everything')
  t.ok(selectorMatches({ matchLabels: { pool: 'a' } }, labels))
  t.notOk(selectorMatches({ matchLabels: { pool: 'b' } }, labels))
  t.ok(selectorMatches({ matchExpressions: [{ key: 'zone', operator: 'In', values: ['z1', 'z2'] }] }, labels))
  t.notOk(selectorMatches({ matchExpressions: [{ key: 'zone', operator: 'In', values: ['z2'] }] }, labels))
  t.ok(selectorMatches({ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['z2'] }] }, labels))
  t.ok(selectorMatches({ matchExpressions: [{ key: 'missing', operator: 'NotIn', values: ['x'] }] }, labels), 'NotIn holds for an absent key')
  t.ok(selectorMatches({ matchExpressions: [{ key: 'pool', operator: 'Exists' }] }, labels))
  t.notOk(selectorMatches({ matchExpressions: [{ key: 'pool', operator: 'DoesNotExist' }] }, labels))
  t.notOk(selectorMatches({ matchExpressions: [{ key: 'pool', operator: 'Gt', values: ['1'] }] }, labels), 'an unknown operator matches nothing')
  t.notOk(selectorMatches({ matchLabels: { pool: 'a' }, matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] }, labels), 'both parts must hold')
})

t.test("reboot, none and an aborted signal make no request at all", async t => {
  const server = await fakeApiServer(500)
  t.teardown(() => server.close())
  const provider = createClusterApiProvider({ kubeConfig: server.kubeConfig })
  t.equal(provider.name, 'clusterapi')
  const node = annotatedNode('n-offline', 'm-offline')

  const reboot = await rejection(provider.remediate(req(node, 'reboot', 'r1')))
  t.ok(reboot instanceof ProviderError, 'reboot: ProviderError')
  t.equal((reboot as ProviderError).retryable, false, 'reboot: not retryable')
  t.match((reboot as Error).message, /no reboot operation/, 'reboot: says why')

  const none = await provider.remediate(req(node, 'none', 'r2'))
  t.match(none.detail, /action 'none'.*left alone/)

  const controller = new AbortController()
  controller.abort(new Error('shutting down'))
  const aborted = await rejection(provider.remediate(req(node, 'replace', 'r3', controller.signal)))
  t.ok(aborted instanceof ProviderError)
  t.equal((aborted as ProviderError).retryable, false)
  t.match((aborted as Error).message, /shutting down/)
  t.equal(server.requests, 0, 'no request reached the server')
})

t.test('error classification against a fake API server', async t => {
  const node = annotatedNode('n-fake', 'm-fake')
  const cases: Array<[number, boolean, RegExp, Record<string, string>?]> = [
    [429, true, /throttled \(HTTP 429, Retry-After 3s\)/, { 'retry-after': '3' }],
    [500, true, /server error \(HTTP 500\)/],
    [503, true, /server error \(HTTP 503\)/],
    [403, false, /forbidden to get machines\.cluster\.x-k8s\.io capi-test\/m-fake: missing RBAC permission: verb "get" on resource "machines" in API group "cluster\.x-k8s\.io" \(in namespace capi-test\); grant it with the ClusterRole in deploy\/components\/clusterapi/],
    [401, false, /unauthenticated \(HTTP 401\)/],
    [400, false, /failed \(HTTP 400\)/]
  ]
  for (const [status, retryable, message, headers] of cases) {
    const server = await fakeApiServer(status, headers)
    const err = await rejection(createClusterApiProvider({ kubeConfig: server.kubeConfig }).remediate(req(node, 'replace', `r-${status}`)))
    await server.close()
    t.ok(err instanceof ProviderError, `${status}: ProviderError`)
    t.equal((err as ProviderError).retryable, retryable, `${status}: retryable=${retryable}`)
    t.match((err as Error).message, message, `${status}: ${(err as Error).message}`)
  }

  const refused = await rejection(createClusterApiProvider({ kubeConfig: await unreachableKubeConfig() }).remediate(req(node, 'replace', 'r-refused')))
  t.ok(refused instanceof ProviderError)
  t.equal((refused as ProviderError).retryable, true, 'connection refused is retryable')
  t.match((refused as Error).message, /failed to reach the API server \(ECONNREFUSED\)/)
})

t.test('the signal reaches the request: a hanging API server is cut off', async t => {
  const server = await fakeApiServer(0)
  t.teardown(() => server.close())
  const node = annotatedNode('n-hang', 'm-hang')
  // v1beta2 given, so the only request is the one that hangs
  const provider = createClusterApiProvider({ kubeConfig: server.kubeConfig, apiVersion: 'v1beta2', requestTimeoutMs: 60_000 })
  const controller = new AbortController()
  const started = performance.now()
  setTimeout(() => controller.abort(new Error('remediation deadline')), 150)
  const err = await rejection(provider.remediate(req(node, 'replace', 'r-hang', controller.signal)))
  const elapsed = performance.now() - started
  t.ok(elapsed < 2000, `rejected ${Math.round(elapsed)}ms after the start, soon after the abort`)
  t.ok(err instanceof ProviderError)
  t.equal((err as ProviderError).retryable, false, 'an abort by the caller is final')
  t.match((err as Error).message, /get machines\.cluster\.x-k8s\.io capi-test\/m-hang aborted: remediation deadline/)

  const timed = await rejection(createClusterApiProvider({ kubeConfig: server.kubeConfig, apiVersion: 'v1beta2', requestTimeoutMs: 200 }).remediate(req(node, 'replace', 'r-slow')))
  t.ok(timed instanceof ProviderError)
  t.equal((timed as ProviderError).retryable, true, 'our own per-request timeout is retryable')
  t.match((timed as Error).message, /got no answer within 200ms/)
})

t.test('withRetries retries a 503 and reports the attempts', async t => {
  const server = await fakeApiServer(503)
  t.teardown(() => server.close())
  const provider = withRetries(createClusterApiProvider({ kubeConfig: server.kubeConfig, apiVersion: 'v1beta2' }), { deadlineMs: 300, initialDelayMs: 20, maxDelayMs: 40 })
  const err = await rejection(provider.remediate(req(annotatedNode('n-503', 'm-503'), 'replace', 'r-503')))
  t.ok(err instanceof RetriesExhaustedError)
  t.ok((err as RetriesExhaustedError).attempts >= 3, `${(err as RetriesExhaustedError).attempts} attempts`)
  t.equal(server.requests, (err as RetriesExhaustedError).attempts, 'one GET per attempt')
})

t.test('a 409 on the conditional patch re-reads the Machine and acts on what it finds', async t => {
  let patches = 0
  let gets = 0
  const seen: string[] = []
  const machine = (rv: string, annotated: boolean): unknown => ({
    apiVersion: 'cluster.x-k8s.io/v1beta2',
    kind: 'Machine',
    metadata: {
      name: 'm-race', namespace: NS, uid: 'u1', resourceVersion: rv,
      labels: { 'cluster.x-k8s.io/cluster-name': CLUSTER, pool: 'a' },
      annotations: annotated ? { [REMEDIATE_MACHINE_ANNOTATION]: '' } : {},
      ownerReferences: [{ apiVersion: 'cluster.x-k8s.io/v1beta2', kind: 'MachineSet', name: 'ms', uid: 'u0', controller: true }]
    },
    spec: { clusterName: CLUSTER },
    status: { nodeRef: { name: 'n-race' } }
  })
  const mhcs = { kind: 'MachineHealthCheckList', items: [{ metadata: { name: 'mhc', namespace: NS }, spec: { clusterName: CLUSTER, selector: { matchLabels: { pool: 'a' } } } }], metadata: {} }
  const server = http.createServer((request, res) => {
    let body = ''
    request.on('data', (c: Buffer) => { body += c.toString() })
    request.on('end', () => {
      seen.push(`${request.method} ${request.url}`)
      const json = (code: number, value: unknown): void => { res.writeHead(code, { 'content-type': 'application/json' }); res.end(JSON.stringify(value)) }
      if (request.method === 'GET' && request.url?.includes('/machinehealthchecks')) return json(200, mhcs)
      if (request.method === 'GET') { gets++; return json(200, machine(String(gets), false)) }
      if (request.method === 'PATCH') {
        patches++
        const sent = JSON.parse(body) as { metadata: { resourceVersion: string } }
        t.equal(request.headers['content-type'], 'application/merge-patch+json', `patch ${patches} is a merge patch`)
        t.equal(sent.metadata.resourceVersion, String(gets), `patch ${patches} carries the resourceVersion it read`)
        if (patches === 1) return json(409, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Conflict', code: 409, message: 'the object has been modified' })
        return json(200, machine(String(gets + 1), true))
      }
      json(405, {})
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => server.close(() => resolve())))
  const kubeConfig = new KubeConfig()
  kubeConfig.loadFromOptions({
    clusters: [{ name: 's', server: `http://127.0.0.1:${(server.address() as { port: number }).port}`, skipTLSVerify: true }],
    users: [{ name: 's', token: 't' }],
    contexts: [{ name: 's', cluster: 's', user: 's' }],
    currentContext: 's'
  })
  const out = await createClusterApiProvider({ kubeConfig, apiVersion: 'v1beta2' }).remediate(req(annotatedNode('n-race', 'm-race'), 'replace', 'r-race'))
  t.match(out.detail, /annotated Machine capi-test\/m-race/)
  t.equal(patches, 2, 'patched again after the conflict')
  t.equal(gets, 2, 'after reading the Machine again')
  t.same(seen.filter(s => s.startsWith('PATCH')).map(s => s.split('?')[0]), ['PATCH /apis/cluster.x-k8s.io/v1beta2/namespaces/capi-test/machines/m-race', 'PATCH /apis/cluster.x-k8s.io/v1beta2/namespaces/capi-test/machines/m-race'])
})

// ---------- on a real control plane ----------

const bins = await binariesForTest()

type Machine = { metadata: { name: string, namespace: string, uid: string, resourceVersion: string, annotations?: Record<string, string>, deletionTimestamp?: string } }

t.test('on a real control plane', { skip: bins.skip ?? false, timeout: 170_000 }, async t => {
  const started = Date.now()
  const world: KubeWorld = await startKubeWorld(bins.binDir)
  t.teardown(() => world.stop())
  await world.installCrds(CRDS.clusterapi)
  t.comment(`control plane with CRDs in ${Date.now() - started}ms`)

  const { objects } = world
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch)
  const scene = await setUpClusterApi(world, NS, CLUSTER)

  let counter = 0
  async function world1 (opts: CapiNodeOptions = {}): Promise<{ node: V1Node, machine: string }> {
    counter++
    const machine = `m-${counter}`
    return { node: await createCapiNode(world, scene, `capi-node-${counter}`, machine, opts), machine }
  }

  const readMachine = async (name: string, namespace = NS): Promise<Machine> =>
    await objects.getNamespacedCustomObject({ group: GROUP, version: 'v1beta2', namespace, plural: 'machines', name }) as Machine
  const patchesBy = async (name: string, user = SA_USER, namespace = NS): Promise<number> =>
    (await world.writes({ resource: 'machines', name, namespace }, user)).length

  const controllerKc = await world.serviceAccountKubeConfig()
  const asController = createClusterApiProvider({ kubeConfig: controllerKc })

  await t.test('RBAC: without the component every call is refused, and the error names the permission', async t => {
    const { node, machine } = await world1()
    const byAnnotation = await rejection(asController.remediate(req(node, 'replace', 'rbac-1')))
    t.ok(byAnnotation instanceof ProviderError)
    t.equal((byAnnotation as ProviderError).retryable, false, 'a 403 is not retryable')
    t.match((byAnnotation as Error).message, /missing RBAC permission: verb "get" on resource "machines" in API group "cluster\.x-k8s\.io" \(in namespace capi-test\)/)
    t.match((byAnnotation as Error).message, /deploy\/components\/clusterapi/)

    const plain: V1Node = { metadata: { name: node.metadata?.name ?? '' }, spec: { providerID: node.spec?.providerID ?? '' } }
    const bySearch = await rejection(asController.remediate(req(plain, 'replace', 'rbac-2')))
    t.match((bySearch as Error).message, /missing RBAC permission: verb "list" on resource "machines" in API group "cluster\.x-k8s\.io" \(cluster-wide\)/)
    t.notOk((await readMachine(machine)).metadata.annotations?.[REMEDIATE_MACHINE_ANNOTATION], 'not annotated')
  })

  const rendered = await world.renderComponent('clusterapi')
  await t.test('the component renders to a ClusterRole and a binding to the controller ServiceAccount', async t => {
    const docs = parseAllDocuments(rendered).map(d => d.toJS() as { kind: string, rules?: unknown, subjects?: unknown })
    t.same(docs.map(d => d.kind).sort(), ['ClusterRole', 'ClusterRoleBinding'])
    t.same(docs.find(d => d.kind === 'ClusterRole')?.rules, [
      { apiGroups: [GROUP], resources: ['machines'], verbs: ['get', 'list', 'patch'] },
      { apiGroups: [GROUP], resources: ['machinehealthchecks'], verbs: ['list'] }
    ], 'exactly these rules')
    t.same(docs.find(d => d.kind === 'ClusterRoleBinding')?.subjects, [{ kind: 'ServiceAccount', name: 'self-healing-controller', namespace: 'self-healing-controller' }])
  })

  await t.test('RBAC: the component without `patch` → the error names patch on machines', async t => {
    const withoutPatch = rendered.replace(/- get\n {2}- list\n {2}- patch\n/, '- get\n  - list\n')
    t.not(withoutPatch, rendered, 'patch removed from the rendered role')
    await world.kubectl(['apply', '-f', '-'], withoutPatch)
    await world.waitForPermission('list', `machines.${GROUP}`, true)
    await world.waitForPermission('patch', `machines.${GROUP}`, false)
    const { node, machine } = await world1()
    const err = await rejection(asController.remediate(req(node, 'replace', 'rbac-3')))
    t.equal((err as ProviderError).retryable, false)
    t.match((err as Error).message, /forbidden to patch machines\.cluster\.x-k8s\.io capi-test\/m-\d+: missing RBAC permission: verb "patch" on resource "machines"/)
    t.equal(await patchesBy(machine), 0, 'no successful write')
  })

  await world.kubectl(['apply', '-f', '-'], rendered)
  await world.waitForPermission('patch', `machines.${GROUP}`, true)

  await t.test('replace annotates the Machine named by the node annotations, exactly once for a repeated remediationId', async t => {
    const { node, machine } = await world1()
    const first = await asController.remediate(req(node, 'replace', 'rem-1'))
    t.match(first.detail, new RegExp(`annotated Machine ${NS}/${machine} \\(node capi-node-\\d+, named by the node's cluster.x-k8s.io/machine annotation\\) with cluster.x-k8s.io/remediate-machine for remediation rem-1`))
    t.match(first.detail, /MachineHealthCheck capi-test\/mhc-pool-a marks it unhealthy and MachineSet ms-a deletes and recreates it/)
    const after = await readMachine(machine)
    t.equal(after.metadata.annotations?.[REMEDIATE_MACHINE_ANNOTATION], '', 'annotation set, empty value')

    const second = await asController.remediate(req(node, 'replace', 'rem-1'))
    t.match(second.detail, /already carries cluster.x-k8s.io\/remediate-machine; MachineHealthCheck replaces it, not annotating again/)
    t.equal((await readMachine(machine)).metadata.resourceVersion, after.metadata.resourceVersion, 'the Machine did not change on the repeat')
    const patches = await world.writes({ resource: 'machines', name: machine, namespace: NS }, SA_USER)
    t.equal(patches.length, 1, 'one write in the audit log')
    t.equal(patches[0]?.verb, 'patch', 'and it is a patch')
  })

  await t.test('finds the Machine by status.nodeRef when the node has no annotations, through v1beta1 too', async t => {
    const { node, machine } = await world1({ nodeAnnotations: false })
    const v1beta1 = createClusterApiProvider({ kubeConfig: controllerKc, apiVersion: 'v1beta1' })
    const out = await v1beta1.remediate(req(node, 'replace', 'rem-2'))
    t.match(out.detail, /found by status.nodeRef.name \/ spec.providerID/)
    t.equal((await readMachine(machine)).metadata.annotations?.[REMEDIATE_MACHINE_ANNOTATION], '')
    t.equal(await patchesBy(machine), 1)
  })

  await t.test('finds a Machine without nodeRef by spec.providerID', async t => {
    const { node, machine } = await world1({ nodeAnnotations: false, nodeRef: false })
    await asController.remediate(req(node, 'replace', 'rem-3'))
    t.equal((await readMachine(machine)).metadata.annotations?.[REMEDIATE_MACHINE_ANNOTATION], '')
  })

  await t.test('a stale node annotation naming a Machine of another node is not followed', async t => {
    const a = await world1()
    const b = await world1({ nodeAnnotations: false })
    // node b claims machine a: a's nodeRef names node a, so b's own Machine is looked up instead
    const confused: V1Node = { ...b.node, metadata: { ...b.node.metadata, annotations: { [MACHINE_ANNOTATION]: a.machine, [CLUSTER_NAMESPACE_ANNOTATION]: NS } } }
    const out = await asController.remediate(req(confused, 'replace', 'rem-stale'))
    t.match(out.detail, new RegExp(`annotated Machine ${NS}/${b.machine} `))
    t.equal(await patchesBy(a.machine), 0, 'the other node\'s Machine is untouched')
    t.equal(await patchesBy(b.machine), 1)

    const lonely = await world.cp.createFakeNodes([{ name: 'capi-lonely', providerID: 'fake:///capi-lonely' }])
    const stale: V1Node = { ...lonely[0], metadata: { name: 'capi-lonely', annotations: { [MACHINE_ANNOTATION]: a.machine, [CLUSTER_NAMESPACE_ANNOTATION]: NS } } }
    const err = await rejection(asController.remediate(req(stale, 'replace', 'rem-stale-2')))
    t.match((err as Error).message, new RegExp(`the Machine its annotations name \\(${NS}/${a.machine}\\) points at another node, and no Machine in namespace ${NS} has status.nodeRef.name=capi-lonely`))
    t.equal((err as ProviderError).retryable, false)
  })

  await t.test('a Machine someone else already marked is done without a write', async t => {
    const { node, machine } = await world1({ machineAnnotations: { [REMEDIATE_MACHINE_ANNOTATION]: '' } })
    const out = await asController.remediate(req(node, 'replace', 'rem-4'))
    t.match(out.detail, /already carries/)
    t.equal(await patchesBy(machine), 0)
  })

  await t.test('a Machine already being deleted is done without a write', async t => {
    const { node, machine } = await world1({ finalizers: ['test.example/hold'] })
    await objects.deleteNamespacedCustomObject({ group: GROUP, version: 'v1beta2', namespace: NS, plural: 'machines', name: machine })
    const out = await asController.remediate(req(node, 'replace', 'rem-5'))
    t.match(out.detail, new RegExp(`Machine ${NS}/${machine} .* is already being deleted \\(since .+\\); its owner replaces it`))
    t.equal(await patchesBy(machine), 0)
  })

  await t.test('a Machine that is gone is done', async t => {
    const node = annotatedNode('capi-node-gone', 'm-never-existed')
    const out = await asController.remediate(req(node, 'replace', 'rem-6'))
    t.match(out.detail, /Machine capi-test\/m-never-existed, named by the node's cluster.x-k8s.io\/machine annotation, no longer exists; .* already replaced/)
  })

  await t.test('no Machine at all: a clear, non-retryable error', async t => {
    const [node] = await world.cp.createFakeNodes([{ name: 'capi-orphan', providerID: 'fake:///capi-orphan' }])
    const err = await rejection(asController.remediate(req(node!, 'replace', 'rem-7')))
    t.ok(err instanceof ProviderError)
    t.equal((err as ProviderError).retryable, false)
    t.match((err as Error).message, /no Cluster API Machine found for node capi-orphan: the node lacks the cluster.x-k8s.io\/machine \/ cluster.x-k8s.io\/cluster-namespace annotations, and no Machine in any namespace has status.nodeRef.name=capi-orphan or spec.providerID=fake:\/\/\/capi-orphan; is the node managed by Cluster API/)
  })

  await t.test('refuses what MachineHealthCheck would not act on, without writing', async t => {
    const skip = await world1({ machineAnnotations: { 'cluster.x-k8s.io/skip-remediation': '' } })
    const e1 = await rejection(asController.remediate(req(skip.node, 'replace', 'rem-8')))
    t.match((e1 as Error).message, /carries cluster.x-k8s.io\/skip-remediation/)
    t.equal((e1 as ProviderError).retryable, false)

    const orphan = await world1({ owned: false })
    const e2 = await rejection(asController.remediate(req(orphan.node, 'replace', 'rem-9')))
    t.match((e2 as Error).message, /no controller owner \(MachineSet, KubeadmControlPlane\), so nothing would create a replacement/)

    const unchecked = await world1({ labels: { [`${GROUP}/cluster-name`]: CLUSTER, pool: 'b' } })
    const e3 = await rejection(asController.remediate(req(unchecked.node, 'replace', 'rem-10')))
    t.match((e3 as Error).message, /no MachineHealthCheck in namespace capi-test selects it \(1 checked\)/)
    for (const m of [skip, orphan, unchecked]) t.equal(await patchesBy(m.machine), 0, `${m.machine} not written`)

    const relaxed = createClusterApiProvider({ kubeConfig: controllerKc, requireMachineHealthCheck: false })
    const out = await relaxed.remediate(req(unchecked.node, 'replace', 'rem-10'))
    t.match(out.detail, /once marked unhealthy, MachineSet ms-a deletes and recreates it/, 'requireMachineHealthCheck: false annotates anyway')
    t.equal(await patchesBy(unchecked.machine), 1)
  })

  await t.test('a paused Machine is annotated, and the detail says remediation waits', async t => {
    const { node } = await world1({ machineAnnotations: { 'cluster.x-k8s.io/paused': '' } })
    const out = await asController.remediate(req(node, 'replace', 'rem-11'))
    t.match(out.detail, /the Machine is paused \(cluster.x-k8s.io\/paused\); remediation starts once it is unpaused/)
  })

  await t.test('two Machines claiming the node: refuses to guess', async t => {
    await world.kubectl(['create', 'namespace', 'capi-other'])
    const a = await world1({ nodeAnnotations: false, providerID: false })
    // a second Machine, in another namespace, whose nodeRef names the same node
    await objects.createNamespacedCustomObject({
      group: GROUP, version: 'v1beta2', namespace: 'capi-other', plural: 'machines',
      body: { apiVersion: `${GROUP}/v1beta2`, kind: 'Machine', metadata: { name: 'twin' }, spec: { clusterName: 'c2' } }
    })
    await objects.patchNamespacedCustomObjectStatus({ group: GROUP, version: 'v1beta2', namespace: 'capi-other', plural: 'machines', name: 'twin', body: { status: { nodeRef: { name: a.node.metadata?.name } } } }, mergePatch)
    const err = await rejection(asController.remediate(req(a.node, 'replace', 'rem-12')))
    t.match((err as Error).message, /matches several Machines \(.+\); refusing to guess which one to replace/)
    t.match((err as Error).message, new RegExp(`capi-test/${a.machine}\\b`), 'names ours')
    t.match((err as Error).message, /capi-other\/twin/, 'and the twin')
    t.equal((err as ProviderError).retryable, false)
    t.equal(await patchesBy(a.machine), 0)
  })

  await t.test('reboot is refused and none does nothing: no request reaches the API server', async t => {
    const { node, machine } = await world1()
    const since = Date.now()
    const err = await rejection(asController.remediate(req(node, 'reboot', 'rem-13')))
    t.equal((err as ProviderError).retryable, false)
    await asController.remediate(req(node, 'none', 'rem-13'))
    t.same((await world.requestsBy(SA_USER, since)).map(e => `${e.verb} ${e.requestURI}`), [], 'no request by the controller')
    t.notOk((await readMachine(machine)).metadata.annotations?.[REMEDIATE_MACHINE_ANNOTATION])
  })

  t.comment(`total ${Date.now() - started}ms`)
})
