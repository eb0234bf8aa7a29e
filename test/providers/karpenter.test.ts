import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node'
import type { V1Node } from '@kubernetes/client-node'
import { ProviderError } from '../../src/providers/provider.ts'
import type { ProviderAction, ProviderRequest } from '../../src/providers/provider.ts'
import { createKarpenterProvider, NODEPOOL_LABEL } from '../../src/providers/karpenter.ts'
import { binariesForTest } from '../support/controlplane.ts'
import { createKarpenterNode, CRDS, fakeApiServer, SA_USER, startKubeWorld, unreachableKubeConfig } from './fixtures/kube-world.ts'
import type { KarpenterNodeOptions, KubeWorld } from './fixtures/kube-world.ts'

const GROUP = 'karpenter.sh'
const TERMINATION_FINALIZER = 'karpenter.sh/termination'

const req = (node: V1Node, action: ProviderAction, remediationId: string, signal: AbortSignal = new AbortController().signal): ProviderRequest =>
  ({ node, action, remediationId, signal })

async function rejection (p: Promise<unknown>): Promise<unknown> {
  return p.then(() => { throw new Error('expected a rejection, got a result') }, (e: unknown) => e)
}

function ownedNode (name: string, claim: string, uid = 'uid-1'): V1Node {
  return {
    metadata: { name, labels: { [NODEPOOL_LABEL]: 'pool-a' }, ownerReferences: [{ apiVersion: 'karpenter.sh/v1', kind: 'NodeClaim', name: claim, uid, blockOwnerDeletion: true }] },
    spec: { providerID: `fake:///${name}` }
  }
}

// ---------- without a control plane ----------

t.test('reboot, none and an aborted signal make no request at all', async t => {
  const server = await fakeApiServer(500)
  t.teardown(() => server.close())
  const provider = createKarpenterProvider({ kubeConfig: server.kubeConfig })
  t.equal(provider.name, 'karpenter')
  const node = ownedNode('k-offline', 'nc-offline')

  const reboot = await rejection(provider.remediate(req(node, 'reboot', 'r1')))
  t.ok(reboot instanceof ProviderError, 'reboot: ProviderError')
  t.equal((reboot as ProviderError).retryable, false, 'reboot: not retryable')
  t.match((reboot as Error).message, /Karpenter has no reboot operation/)

  const none = await provider.remediate(req(node, 'none', 'r2'))
  t.match(none.detail, /action 'none'.*NodeClaim was left alone/)

  const controller = new AbortController()
  controller.abort(new Error('shutting down'))
  const aborted = await rejection(provider.remediate(req(node, 'replace', 'r3', controller.signal)))
  t.ok(aborted instanceof ProviderError)
  t.equal((aborted as ProviderError).retryable, false)
  t.equal(server.requests, 0, 'no request reached the server')
})

t.test('error classification against a fake API server', async t => {
  const node = ownedNode('k-fake', 'nc-fake')
  const cases: Array<[number, boolean, RegExp]> = [
    [429, true, /get nodeclaims\.karpenter\.sh nc-fake throttled \(HTTP 429\)/],
    [500, true, /server error \(HTTP 500\)/],
    [403, false, /forbidden to get nodeclaims\.karpenter\.sh nc-fake: missing RBAC permission: verb "get" on resource "nodeclaims" in API group "karpenter\.sh" \(cluster-wide\); grant it with the ClusterRole in deploy\/components\/karpenter/]
  ]
  for (const [status, retryable, message] of cases) {
    const server = await fakeApiServer(status)
    const err = await rejection(createKarpenterProvider({ kubeConfig: server.kubeConfig }).remediate(req(node, 'replace', `r-${status}`)))
    await server.close()
    t.ok(err instanceof ProviderError, `${status}: ProviderError`)
    t.equal((err as ProviderError).retryable, retryable, `${status}: retryable=${retryable}`)
    t.match((err as Error).message, message, `${status}: ${(err as Error).message}`)
  }
  const refused = await rejection(createKarpenterProvider({ kubeConfig: await unreachableKubeConfig() }).remediate(req(node, 'replace', 'r-refused')))
  t.equal((refused as ProviderError).retryable, true, 'connection refused is retryable')
})

t.test('the signal reaches the request: a hanging API server is cut off', async t => {
  const server = await fakeApiServer(0)
  t.teardown(() => server.close())
  const controller = new AbortController()
  const started = performance.now()
  setTimeout(() => controller.abort(new Error('remediation deadline')), 150)
  const err = await rejection(createKarpenterProvider({ kubeConfig: server.kubeConfig }).remediate(req(ownedNode('k-hang', 'nc-hang'), 'replace', 'r-hang', controller.signal)))
  t.ok(performance.now() - started < 2000, 'rejected soon after the abort')
  t.equal((err as ProviderError).retryable, false)
  t.match((err as Error).message, /get nodeclaims\.karpenter\.sh nc-hang aborted: remediation deadline/)
})

// ---------- on a real control plane ----------

const bins = await binariesForTest()

type NodeClaim = { metadata: { name: string, uid: string, deletionTimestamp?: string, finalizers?: string[] } }

t.test('on a real control plane', { skip: bins.skip ?? false, timeout: 170_000 }, async t => {
  const started = Date.now()
  const world: KubeWorld = await startKubeWorld(bins.binDir)
  t.teardown(() => world.stop())
  await world.installCrds(CRDS.karpenter)
  t.comment(`control plane with CRDs in ${Date.now() - started}ms`)

  const { objects } = world
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch)

  let counter = 0
  async function karpenterNode (opts: KarpenterNodeOptions = {}): Promise<{ node: V1Node, claim: string, uid: string }> {
    counter++
    const claim = `pool-a-${counter}`
    return { ...await createKarpenterNode(world, `k-node-${counter}`, claim, opts), claim }
  }

  const readClaim = async (name: string): Promise<NodeClaim | undefined> =>
    await objects.getClusterCustomObject({ group: GROUP, version: 'v1', plural: 'nodeclaims', name }).then(c => c as NodeClaim, () => undefined)
  const deletesBy = async (name: string, user = SA_USER): Promise<number> =>
    (await world.writes({ resource: 'nodeclaims', name }, user)).filter(e => e.verb === 'delete').length

  const controllerKc = await world.serviceAccountKubeConfig()
  const asController = createKarpenterProvider({ kubeConfig: controllerKc })

  await t.test('RBAC: without the component every call is refused, and the error names the permission', async t => {
    const { node, claim } = await karpenterNode()
    const byOwner = await rejection(asController.remediate(req(node, 'replace', 'rbac-1')))
    t.ok(byOwner instanceof ProviderError)
    t.equal((byOwner as ProviderError).retryable, false, 'a 403 is not retryable')
    t.match((byOwner as Error).message, /missing RBAC permission: verb "get" on resource "nodeclaims" in API group "karpenter\.sh" \(cluster-wide\)/)
    const plain: V1Node = { metadata: { name: node.metadata?.name ?? '' }, spec: { providerID: node.spec?.providerID ?? '' } }
    const bySearch = await rejection(asController.remediate(req(plain, 'replace', 'rbac-2')))
    t.match((bySearch as Error).message, /missing RBAC permission: verb "list" on resource "nodeclaims"/)
    t.ok(await readClaim(claim), 'NodeClaim still there')
  })

  const rendered = await world.renderComponent('karpenter')
  await t.test('the component renders to a ClusterRole and a binding to the controller ServiceAccount', async t => {
    const docs = parseAllDocuments(rendered).map(d => d.toJS() as { kind: string, rules?: unknown, subjects?: unknown })
    t.same(docs.map(d => d.kind).sort(), ['ClusterRole', 'ClusterRoleBinding'])
    t.same(docs.find(d => d.kind === 'ClusterRole')?.rules, [{ apiGroups: [GROUP], resources: ['nodeclaims'], verbs: ['get', 'list', 'delete'] }], 'exactly this rule')
    t.same(docs.find(d => d.kind === 'ClusterRoleBinding')?.subjects, [{ kind: 'ServiceAccount', name: 'self-healing-controller', namespace: 'self-healing-controller' }])
  })

  await t.test('RBAC: the component without `delete` → the error names delete on nodeclaims', async t => {
    const withoutDelete = rendered.replace(/ {2}- list\n {2}- delete\n/, '  - list\n')
    t.not(withoutDelete, rendered, 'delete removed from the rendered role')
    await world.kubectl(['apply', '-f', '-'], withoutDelete)
    await world.waitForPermission('get', `nodeclaims.${GROUP}`, true)
    await world.waitForPermission('delete', `nodeclaims.${GROUP}`, false)
    const { node, claim } = await karpenterNode()
    const err = await rejection(asController.remediate(req(node, 'replace', 'rbac-3')))
    t.equal((err as ProviderError).retryable, false)
    t.match((err as Error).message, /forbidden to delete nodeclaims\.karpenter\.sh pool-a-\d+: missing RBAC permission: verb "delete" on resource "nodeclaims"/)
    t.ok(await readClaim(claim), 'NodeClaim still there')
  })

  await world.kubectl(['apply', '-f', '-'], rendered)
  await world.waitForPermission('delete', `nodeclaims.${GROUP}`, true)

  await t.test("replace deletes the node's owner NodeClaim, exactly once for a repeated remediationId", async t => {
    const { node, claim } = await karpenterNode()
    const first = await asController.remediate(req(node, 'replace', 'rem-1'))
    t.match(first.detail, new RegExp(`deleted NodeClaim ${claim} \\(node k-node-\\d+, NodePool pool-a, the node's owner\\) for remediation rem-1; Karpenter's termination finalizer`))
    t.equal(await readClaim(claim), undefined, 'NodeClaim gone (no finalizer here)')
    const second = await asController.remediate(req(node, 'replace', 'rem-1'))
    t.match(second.detail, new RegExp(`NodeClaim ${claim}, the node's owner, no longer exists; .*nothing to do`))
    t.equal(await deletesBy(claim), 1, 'one delete in the audit log')
  })

  await t.test('a NodeClaim held by its termination finalizer: deleted once, then reported as deleting', async t => {
    const { node, claim } = await karpenterNode({ finalizer: true, ownerRef: false })
    const first = await asController.remediate(req(node, 'replace', 'rem-2'))
    t.match(first.detail, /deleted NodeClaim pool-a-\d+ .*found by status.nodeName \/ status.providerID/)
    const held = await readClaim(claim)
    t.ok(held?.metadata.deletionTimestamp, 'deletionTimestamp set')
    t.same(held?.metadata.finalizers, [TERMINATION_FINALIZER], 'still held by the finalizer')
    const second = await asController.remediate(req(node, 'replace', 'rem-2'))
    t.match(second.detail, /is already being deleted \(since .+; finalizers karpenter.sh\/termination pending\); Karpenter terminates the instance, not deleting again/)
    const third = await asController.remediate(req(node, 'replace', 'another-remediation'))
    t.match(third.detail, /already being deleted/, 'whatever the remediation id')
    t.equal(await deletesBy(claim), 1, 'one delete in the audit log')
  })

  await t.test('finds a NodeClaim by status.providerID when it has no nodeName yet', async t => {
    const { node, claim } = await karpenterNode({ ownerRef: false, nodeName: false })
    await asController.remediate(req(node, 'replace', 'rem-3'))
    t.equal(await readClaim(claim), undefined)
    t.equal(await deletesBy(claim), 1)
  })

  await t.test('found by search and deleted at once: a repeat with the same id is done, from memory', async t => {
    const { node, claim } = await karpenterNode({ ownerRef: false })
    await asController.remediate(req(node, 'replace', 'rem-4'))
    t.equal(await readClaim(claim), undefined)
    const again = await asController.remediate(req(node, 'replace', 'rem-4'))
    t.match(again.detail, /is gone since this remediation deleted it/)
    const other = await rejection(asController.remediate(req(node, 'replace', 'rem-other')))
    t.match((other as Error).message, /no NodeClaim found/, 'another remediation id is not covered by that memory')
    t.equal(await deletesBy(claim), 1)
  })

  await t.test('an owner reference to a NodeClaim whose name now has another UID: gone, the new one is left alone', async t => {
    const { claim } = await karpenterNode()
    const node = ownedNode('k-stale', claim, 'some-older-uid')
    const out = await asController.remediate(req(node, 'replace', 'rem-5'))
    t.match(out.detail, /no longer exists \(a newer NodeClaim has its name\)/)
    t.ok(await readClaim(claim), 'the newer NodeClaim is untouched')
    t.equal(await deletesBy(claim), 0)
  })

  await t.test('no NodeClaim: a clear, non-retryable error', async t => {
    const [plain] = await world.cp.createFakeNodes([{ name: 'k-plain', providerID: 'fake:///k-plain' }])
    const err = await rejection(asController.remediate(req(plain!, 'replace', 'rem-6')))
    t.ok(err instanceof ProviderError)
    t.equal((err as ProviderError).retryable, false)
    t.match((err as Error).message, /no NodeClaim found for node k-plain: it has no NodeClaim ownerReference and no NodeClaim has status.nodeName=k-plain or status.providerID=fake:\/\/\/k-plain \(and it has no karpenter.sh\/nodepool label: is it a Karpenter node at all\?\)/)
  })

  await t.test('two NodeClaims claiming the node: refuses to guess', async t => {
    const a = await karpenterNode({ ownerRef: false, providerID: false })
    await objects.createClusterCustomObject({ group: GROUP, version: 'v1', plural: 'nodeclaims', body: { apiVersion: `${GROUP}/v1`, kind: 'NodeClaim', metadata: { name: 'twin' }, spec: {} } })
    await objects.patchClusterCustomObjectStatus({ group: GROUP, version: 'v1', plural: 'nodeclaims', name: 'twin', body: { status: { nodeName: a.node.metadata?.name } } }, mergePatch)
    const noProviderID: V1Node = { metadata: { name: a.node.metadata?.name ?? '' } }
    const err = await rejection(asController.remediate(req(noProviderID, 'replace', 'rem-7')))
    t.match((err as Error).message, /matches several NodeClaims \(.+\); refusing to guess which one to delete/)
    t.equal(await deletesBy(a.claim), 0)
    t.equal(await deletesBy('twin'), 0)
  })

  await t.test('reboot is refused and none does nothing: no request reaches the API server', async t => {
    const { node, claim } = await karpenterNode()
    const since = Date.now()
    const err = await rejection(asController.remediate(req(node, 'reboot', 'rem-8')))
    t.equal((err as ProviderError).retryable, false)
    await asController.remediate(req(node, 'none', 'rem-8'))
    t.same((await world.requestsBy(SA_USER, since)).map(e => `${e.verb} ${e.requestURI}`), [], 'no request by the controller')
    t.ok(await readClaim(claim))
  })

  t.comment(`total ${Date.now() - started}ms`)
})
