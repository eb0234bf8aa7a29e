// deploy/ as shipped: the rendered manifests keep every security property (each is asserted on
// its own, so dropping one fails here), and on a real API server the ServiceAccount can do
// exactly what the controller needs and nothing more. Each permission below is a real
// SelfSubjectAccessReview (`kubectl auth can-i`) or a real request made with the account's own
// token, never a reading of the YAML.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { stringify } from 'yaml'
import type {
  V1ClusterRole,
  V1ClusterRoleBinding,
  V1Deployment,
  V1Namespace,
  V1NetworkPolicy,
  V1PodDisruptionBudget,
  V1PolicyRule,
  V1Role,
  V1RoleBinding,
  V1Service,
  V1ServiceAccount
} from '@kubernetes/client-node'
import { binariesForTest, startControlPlane, waitFor, type ControlPlane } from '../support/controlplane.ts'
import { envOf, kustomize, pick, ruleKeys, run, said, type Manifest } from '../support/manifests.ts'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const DEPLOY = path.join(ROOT, 'deploy')
const COMPONENT = path.join(DEPLOY, 'base', 'components', 'force-delete-on-timeout')
const NS = 'self-healing-controller'
const NAME = 'self-healing-controller'
const SA = `system:serviceaccount:${NS}:${NAME}`
const POD_LABELS = { 'app.kubernetes.io/name': NAME, 'app.kubernetes.io/component': 'controller' }
const NONROOT = 65532

// What the controller's Kubernetes client calls, as "group|resource|resourceName|verb" ('*' for
// any name). The ClusterRole and the Role must grant exactly these, and the API server must
// report exactly these for the ServiceAccount.
const CLUSTER_RULES = [
  '|nodes|*|get', '|nodes|*|list', '|nodes|*|watch', '|nodes|*|patch',
  '|pods|*|get', '|pods|*|list', '|pods|*|watch',
  '|pods/eviction|*|create',
  'events.k8s.io|events|*|create',
  // The data-safe drain: does the pod's owner still exist, is its volume local, which PDBs apply.
  'apps|replicasets|*|get', 'apps|statefulsets|*|get', 'apps|daemonsets|*|get',
  'batch|jobs|*|get', '|replicationcontrollers|*|get',
  '|persistentvolumeclaims|*|get', '|persistentvolumes|*|get',
  'policy|poddisruptionbudgets|*|list'
]
const LEASE_RULES = [
  `coordination.k8s.io|leases|${NAME}|get`,
  `coordination.k8s.io|leases|${NAME}|update`,
  'coordination.k8s.io|leases|*|create'
]

// The control plane's kubectl when it is there (the version CI uses), else the machine's: the
// static checks need only kustomize, which every kubectl embeds.
const bins = await binariesForTest()
const KUBECTL = bins.binDir === undefined ? 'kubectl' : path.join(bins.binDir, 'kubectl')

// Only a missing kubectl is a reason to skip; deploy/ failing to render is a failure.
const noKubectl = (await run(KUBECTL, ['version', '--client'])).code === -1
let rendered: Manifest[] = []
let renderError: string | undefined
if (!noKubectl) {
  try {
    rendered = await kustomize(KUBECTL, DEPLOY)
  } catch (err) {
    renderError = (err as Error).message
  }
}

t.test('kubectl kustomize deploy/ renders the base', { skip: noKubectl ? `no ${KUBECTL} to render with` : false }, async t => {
  if (renderError !== undefined) return t.fail(renderError)
  const all = rendered

  t.test('exactly the expected objects, all but the cluster-scoped ones in the namespace', async t => {
    t.same(all.map(m => `${m.kind}/${m.metadata.name}`).sort(), [
      'ClusterRole/self-healing-controller',
      'ClusterRoleBinding/self-healing-controller',
      'Deployment/self-healing-controller',
      'Namespace/self-healing-controller',
      'NetworkPolicy/self-healing-controller',
      'PodDisruptionBudget/self-healing-controller',
      'Role/self-healing-controller-leader-election',
      'RoleBinding/self-healing-controller-leader-election',
      'Service/self-healing-controller',
      'ServiceAccount/self-healing-controller'
    ])
    const clusterScoped = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding'])
    for (const m of all) {
      if (clusterScoped.has(m.kind)) t.equal(m.metadata.namespace, undefined, `${m.kind} has no namespace`)
      else t.equal(m.metadata.namespace, NS, `${m.kind} ${m.metadata.name} is in ${NS}`)
    }
    // The webhook token is referenced, never shipped.
    t.notOk(all.some(m => m.kind === 'Secret'), 'no Secret in the rendered output')
  })

  t.test('the namespace enforces the restricted Pod Security Standard', async t => {
    const ns = pick<V1Namespace>(all, 'Namespace', NS)
    t.equal(ns.metadata?.labels?.['pod-security.kubernetes.io/enforce'], 'restricted')
  })

  t.test('Deployment: replicas, probes, resources, spread', async t => {
    const d = pick<V1Deployment>(all, 'Deployment', NAME)
    const pod = d.spec?.template.spec
    const c = pod?.containers[0]
    if (pod === undefined || c === undefined) return t.fail('no pod template or container')
    t.equal(d.spec?.replicas, 2)
    t.same(d.spec?.selector.matchLabels, POD_LABELS)
    t.match(d.spec?.template.metadata?.labels, POD_LABELS)
    t.equal(pod.containers.length, 1, 'one container')
    t.equal(pod.initContainers, undefined, 'no init containers to secure separately')
    t.equal(c.image, 'self-healing-controller:0.1.0', 'image tag set by deploy/kustomization.yaml')

    t.same(c.ports, [{ name: 'http', containerPort: 8080, protocol: 'TCP' }])
    t.equal(c.readinessProbe?.httpGet?.path, '/readyz')
    t.equal(c.readinessProbe?.httpGet?.port, 'http')
    t.equal(c.livenessProbe?.httpGet?.path, '/healthz')
    t.equal(c.livenessProbe?.httpGet?.port, 'http')
    for (const kind of ['requests', 'limits'] as const) {
      t.ok(c.resources?.[kind]?.cpu, `${kind}.cpu set`)
      t.ok(c.resources?.[kind]?.memory, `${kind}.memory set`)
    }

    const hostSpread = pod.topologySpreadConstraints?.find(s => s.topologyKey === 'kubernetes.io/hostname')
    t.equal(hostSpread?.whenUnsatisfiable, 'DoNotSchedule', 'never both replicas on one node')
    t.equal(hostSpread?.maxSkew, 1)
    t.same(hostSpread?.labelSelector?.matchLabels, POD_LABELS)
    // Justified in deployment.yaml: system-* classes are for what the cluster needs to work,
    // and GKE refuses them outside kube-system without a quota.
    t.notMatch(pod.priorityClassName ?? '', /^system-/, 'no system-* priority class')
  })

  t.test('Deployment: pod and container security', async t => {
    const pod = pick<V1Deployment>(all, 'Deployment', NAME).spec?.template.spec
    const c = pod?.containers[0]
    if (pod === undefined || c === undefined) return t.fail('no pod template or container')
    t.equal(pod.securityContext?.runAsNonRoot, true, 'pod runAsNonRoot')
    t.equal(pod.securityContext?.runAsUser, NONROOT, 'pod runAsUser 65532')
    t.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault', 'pod seccomp RuntimeDefault')
    t.equal(c.securityContext?.runAsNonRoot, true, 'container runAsNonRoot')
    t.equal(c.securityContext?.runAsUser, NONROOT, 'container runAsUser 65532')
    t.equal(c.securityContext?.readOnlyRootFilesystem, true, 'readOnlyRootFilesystem')
    t.equal(c.securityContext?.allowPrivilegeEscalation, false, 'allowPrivilegeEscalation false')
    t.notOk(c.securityContext?.privileged, 'not privileged')
    t.same(c.securityContext?.capabilities?.drop, ['ALL'], 'drops ALL capabilities')
    t.equal(c.securityContext?.capabilities?.add, undefined, 'adds none back')
    t.equal(c.securityContext?.seccompProfile?.type, 'RuntimeDefault', 'container seccomp RuntimeDefault')
    t.notOk(pod.hostNetwork || pod.hostPID || pod.hostIPC, 'no host namespaces')
    t.notOk(pod.volumes?.some(v => v.hostPath !== undefined), 'no hostPath volume')
    t.equal(pod.automountServiceAccountToken, true, 'the pod mounts its API token (in-cluster credentials)')
    t.equal(pod.serviceAccountName, NAME)
    const sa = pick<V1ServiceAccount>(all, 'ServiceAccount', NAME)
    t.equal(sa.automountServiceAccountToken, false, 'the account itself does not hand tokens to other pods')
  })

  t.test('Deployment: environment and the webhook token Secret', async t => {
    const pod = pick<V1Deployment>(all, 'Deployment', NAME).spec?.template.spec
    const c = pod?.containers[0]
    if (pod === undefined || c === undefined) return t.fail('no pod template or container')
    t.equal(envOf(c, 'CLUSTER')?.value, 'kubernetes')
    t.equal(envOf(c, 'PORT')?.value, '8080')
    t.equal(envOf(c, 'KUBECONFIG'), undefined, 'in-cluster credentials, no kubeconfig')
    t.equal(envOf(c, 'WEBHOOK_TOKEN'), undefined, 'no token in an env value')
    t.equal(envOf(c, 'INSECURE_NO_AUTH'), undefined, 'authentication stays on')
    t.equal(envOf(c, 'POD_NAME')?.valueFrom?.fieldRef?.fieldPath, 'metadata.name')
    t.equal(envOf(c, 'POD_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath, 'metadata.namespace')
    t.equal(envOf(c, 'LEASE_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath, 'metadata.namespace', 'Lease in the pod\'s namespace, where the Role is')
    const role = pick<V1Role>(all, 'Role', `${NAME}-leader-election`)
    t.same(role.rules?.find(r => r.resourceNames !== undefined)?.resourceNames, [envOf(c, 'LEASE_NAME')?.value], 'LEASE_NAME is the name the Role allows')

    // WEBHOOK_TOKEN_FILE must point into the mount of Secret self-healing-controller-webhook, key token.
    const file = envOf(c, 'WEBHOOK_TOKEN_FILE')?.value ?? ''
    const mount = c.volumeMounts?.find(m => path.posix.dirname(file) === m.mountPath)
    t.ok(mount, `a volume is mounted at ${path.posix.dirname(file)}`)
    t.equal(mount?.readOnly, true)
    const volume = pod.volumes?.find(v => v.name === mount?.name)
    t.equal(volume?.secret?.secretName, 'self-healing-controller-webhook')
    t.notOk(volume?.secret?.optional, 'a missing Secret stops the pod instead of running unauthenticated')
    const item = volume?.secret?.items?.find(i => i.path === path.posix.basename(file))
    t.equal(item?.key, 'token')
    t.ok(c.volumeMounts?.some(m => m.mountPath === '/tmp'), 'a writable /tmp on the read-only root')
  })

  t.test('RBAC: exactly the rules the controller uses, bound to its account', async t => {
    const cr = pick<V1ClusterRole>(all, 'ClusterRole', NAME)
    t.same(ruleKeys(cr.rules), [...CLUSTER_RULES].sort())
    const role = pick<V1Role>(all, 'Role', `${NAME}-leader-election`)
    t.equal(role.metadata?.namespace, NS)
    t.same(ruleKeys(role.rules), [...LEASE_RULES].sort())
    const subjects = [{ kind: 'ServiceAccount', name: NAME, namespace: NS }]
    const crb = pick<V1ClusterRoleBinding>(all, 'ClusterRoleBinding', NAME)
    t.same(crb.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: NAME })
    t.same(crb.subjects, subjects)
    const rb = pick<V1RoleBinding>(all, 'RoleBinding', `${NAME}-leader-election`)
    t.same(rb.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `${NAME}-leader-election` })
    t.same(rb.subjects, subjects)
  })

  t.test('Service, NetworkPolicy and PodDisruptionBudget select the controller pods', async t => {
    const svc = pick<V1Service>(all, 'Service', NAME)
    t.same(svc.spec?.selector, POD_LABELS)
    t.same(svc.spec?.ports?.map(p => [p.port, p.targetPort]), [[8080, 'http']])

    const np = pick<V1NetworkPolicy>(all, 'NetworkPolicy', NAME)
    t.same(np.spec?.podSelector?.matchLabels, POD_LABELS)
    t.same(np.spec?.policyTypes, ['Ingress'])
    // One rule, one peer: any extra peer, an empty `from` (everyone) or an ipBlock widens it.
    t.same(np.spec?.ingress, [{
      from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
      ports: [{ protocol: 'TCP', port: 8080 }]
    }])

    const pdb = pick<V1PodDisruptionBudget>(all, 'PodDisruptionBudget', NAME)
    t.equal(pdb.spec?.minAvailable, 1)
    t.same(pdb.spec?.selector?.matchLabels, POD_LABELS)
  })

  t.test('force-delete-on-timeout adds the setting and pods/delete together; the base has neither', async t => {
    const base = pick<V1Deployment>(all, 'Deployment', NAME).spec?.template.spec?.containers[0]
    t.equal(base === undefined ? 'missing' : envOf(base, 'FORCE_DELETE_ON_TIMEOUT'), undefined)
    t.notOk(all.some(m => ruleKeys((m as V1ClusterRole).rules).some(k => k.endsWith('|delete'))), 'no delete anywhere in the base')

    // An overlay as a user would write it. kustomize refuses absolute paths, hence relative ones.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shc-overlay-'))
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
    fs.writeFileSync(path.join(dir, 'kustomization.yaml'), stringify({
      resources: [path.relative(dir, DEPLOY)],
      components: [path.relative(dir, COMPONENT)]
    }))
    const withComponent = await kustomize(KUBECTL, dir)
    const c = pick<V1Deployment>(withComponent, 'Deployment', NAME).spec?.template.spec?.containers[0]
    t.equal(c === undefined ? 'missing' : envOf(c, 'FORCE_DELETE_ON_TIMEOUT')?.value, 'true')
    const extra = pick<V1ClusterRole>(withComponent, 'ClusterRole', `${NAME}-force-delete`)
    t.same(ruleKeys(extra.rules), ['|pods|*|delete'])
    const binding = pick<V1ClusterRoleBinding>(withComponent, 'ClusterRoleBinding', `${NAME}-force-delete`)
    t.same(binding.subjects, [{ kind: 'ServiceAccount', name: NAME, namespace: NS }])
    t.same(binding.roleRef.name, `${NAME}-force-delete`)
  })
})

// ------------------------------------------------------------------------------------------------
// On a real control plane

/** Runs checks a few at a time: each is a kubectl process, and the machine has two cores. */
async function inBatches<T, R> (items: T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = []
  for (let i = 0; i < items.length; i += size) out.push(...await Promise.all(items.slice(i, i + size).map(fn)))
  return out
}

type CanI = { args: string[], why: string }

// Allowed: what the controller does.
const ALLOWED: CanI[] = [
  { args: ['get', 'nodes'], why: 'fresh read before read-modify-write' },
  { args: ['list', 'nodes'], why: 'node watch cache' },
  { args: ['watch', 'nodes'], why: 'node watch cache' },
  { args: ['patch', 'nodes'], why: 'annotations and cordon, as a merge patch' },
  { args: ['list', 'pods', '--all-namespaces'], why: 'pods on a node (field selector)' },
  { args: ['watch', 'pods', '--all-namespaces'], why: 'waiting for evicted pods to go' },
  { args: ['get', 'pods', '-n', 'default'], why: 'reading one pod' },
  { args: ['create', 'pods', '--subresource=eviction', '-n', 'default'], why: 'eviction' },
  { args: ['create', 'pods', '--subresource=eviction', '-n', 'kube-system'], why: 'eviction in any namespace' },
  { args: ['create', 'events.events.k8s.io', '-n', 'default'], why: 'Events about Nodes' },
  { args: ['get', 'persistentvolumeclaims', '-n', 'default'], why: 'does a pod keep data on this machine' },
  { args: ['get', 'persistentvolumes'], why: 'does a pod keep data on this machine' },
  { args: ['get', 'replicasets.apps', '-n', 'default'], why: 'does a pod\'s controller still exist' },
  { args: ['get', 'statefulsets.apps', '-n', 'default'], why: 'does a pod\'s controller still exist' },
  { args: ['get', 'jobs.batch', '-n', 'default'], why: 'does a pod\'s controller still exist' },
  { args: ['list', 'poddisruptionbudgets.policy', '-n', 'default'], why: 'naming the budgets of a pod that has several' },
  { args: ['get', `leases.coordination.k8s.io/${NAME}`, '-n', NS], why: 'leader election' },
  { args: ['update', `leases.coordination.k8s.io/${NAME}`, '-n', NS], why: 'renewing the Lease' },
  { args: ['create', 'leases.coordination.k8s.io', '-n', NS], why: 'first replica creates the Lease (create cannot be limited by name)' }
]

// Denied: what a controller that drains nodes must still never be able to do.
const DENIED: CanI[] = [
  { args: ['get', 'secrets', '--all-namespaces'], why: 'no Secrets anywhere' },
  { args: ['list', 'secrets', '--all-namespaces'], why: 'no Secrets anywhere' },
  { args: ['watch', 'secrets', '--all-namespaces'], why: 'no Secrets anywhere' },
  { args: ['get', 'secrets', '-n', NS], why: 'not even its own webhook token through the API' },
  { args: ['get', 'secrets', '-n', 'kube-system'], why: 'no Secrets anywhere' },
  { args: ['get', 'configmaps', '--all-namespaces'], why: 'no ConfigMaps anywhere' },
  { args: ['list', 'configmaps', '-n', NS], why: 'no ConfigMaps anywhere' },
  { args: ['get', 'configmaps', '-n', 'kube-system'], why: 'no ConfigMaps anywhere' },
  { args: ['delete', 'pods', '-n', 'default'], why: 'pods leave only through the Eviction API' },
  { args: ['delete', 'pods', '--all-namespaces'], why: 'pods leave only through the Eviction API' },
  { args: ['deletecollection', 'pods', '-n', 'default'], why: 'pods leave only through the Eviction API' },
  { args: ['create', 'pods', '-n', 'default'], why: 'creating pods is how RBAC gets escalated' },
  { args: ['create', 'pods', '-n', NS], why: 'creating pods is how RBAC gets escalated' },
  { args: ['update', 'pods', '-n', 'default'], why: 'pods are read-only' },
  { args: ['patch', 'pods', '-n', 'default'], why: 'pods are read-only' },
  { args: ['create', 'pods', '--subresource=exec', '-n', 'default'], why: 'no exec' },
  { args: ['update', 'nodes'], why: 'only patch, never a full replace' },
  { args: ['list', 'persistentvolumeclaims', '--all-namespaces'], why: 'claims are read one at a time, never listed' },
  { args: ['update', 'statefulsets.apps', '-n', 'default'], why: 'controllers are read-only' },
  { args: ['delete', 'persistentvolumes'], why: 'volumes are read-only' },
  { args: ['delete', 'nodes'], why: 'the cloud removes machines, not us' },
  { args: ['create', 'nodes'], why: 'nodes register themselves' },
  { args: ['update', 'nodes', '--subresource=status'], why: 'node status belongs to the kubelet' },
  { args: ['get', 'leases.coordination.k8s.io', '-n', 'kube-system'], why: 'the control plane\'s locks are not ours' },
  { args: ['get', `leases.coordination.k8s.io/${NAME}`, '-n', 'kube-system'], why: 'same name, other namespace' },
  { args: ['update', `leases.coordination.k8s.io/${NAME}`, '-n', 'default'], why: 'same name, other namespace' },
  { args: ['create', 'leases.coordination.k8s.io', '-n', 'kube-system'], why: 'create only in our namespace' },
  { args: ['get', 'leases.coordination.k8s.io/other', '-n', NS], why: 'only our own Lease, by name' },
  { args: ['update', 'leases.coordination.k8s.io/other', '-n', NS], why: 'only our own Lease, by name' },
  { args: ['list', 'leases.coordination.k8s.io', '-n', NS], why: 'list cannot be limited by name, so none' },
  { args: ['delete', `leases.coordination.k8s.io/${NAME}`, '-n', NS], why: 'the Lease is handed back by update' },
  { args: ['update', 'events.events.k8s.io', '-n', 'default'], why: 'Events are only created' },
  { args: ['list', 'events.events.k8s.io', '-n', 'default'], why: 'reading Events is for humans' },
  { args: ['create', 'serviceaccounts', '--subresource=token', '-n', NS], why: 'no minting tokens' },
  { args: ['create', 'clusterrolebindings'], why: 'no granting itself more' },
  { args: ['escalate', 'clusterroles'], why: 'no granting itself more' },
  { args: ['impersonate', 'users'], why: 'no acting as someone else' },
  { args: ['patch', 'deployments.apps', '-n', NS], why: 'cannot change its own Deployment' },
  { args: ['*', '*', '--all-namespaces'], why: 'not an admin' }
]

t.test('on a real API server', { skip: bins.skip ?? false, timeout: 170_000 }, async t => {
  if (renderError !== undefined) return t.fail(`deploy/ does not render: ${renderError}`)
  const t0 = Date.now()
  const cp: ControlPlane = await startControlPlane({ binDir: bins.binDir })
  t.comment(`control plane up in ${Date.now() - t0} ms`)
  t.teardown(() => cp.stop())
  const all = rendered
  const yamlOf = (ms: Manifest[]) => ms.map(m => stringify(m)).join('---\n')
  const admin = (args: string[], input?: string) => cp.kubectl(args, input === undefined ? {} : { input })
  let saKubeconfig = ''
  const asSa = (args: string[], input?: string) => cp.kubectl(args, input === undefined ? { kubeconfig: saKubeconfig } : { kubeconfig: saKubeconfig, input })

  await t.test('kubectl apply --server-side --dry-run=server -k deploy/ is accepted, Pod Security included', async t => {
    // A dry run creates nothing, so the objects inside the namespace would fail with
    // "namespace not found": the namespace is applied for real first, as a first install would.
    const ns = await admin(['apply', '--server-side', '-f', '-'], yamlOf(all.filter(m => m.kind === 'Namespace')))
    t.equal(ns.code, 0, ns.stderr)
    const dry = await admin(['apply', '--server-side', '--dry-run=server', '-k', DEPLOY])
    t.equal(dry.code, 0, dry.stderr)
    t.equal(dry.stdout.match(/\(server dry run\)/g)?.length, all.length, 'every object went through the server')
    // The namespace warns on "restricted" violations: a clean stderr means the pod template
    // passes the API server's own Pod Security check.
    t.notMatch(dry.stderr, /PodSecurity|Warning/i, 'no Pod Security warning')

    // The check above is live: the same Deployment with one property removed gets the warning.
    const weakened = structuredClone(pick<V1Deployment>(all, 'Deployment', NAME))
    delete weakened.spec?.template.spec?.containers[0]?.securityContext?.allowPrivilegeEscalation
    const control = await admin(['apply', '--server-side', '--dry-run=server', '-f', '-'], stringify(weakened))
    t.match(control.stderr, /would violate PodSecurity "restricted/, 'a weakened pod template is flagged')
  })

  await t.test('the RBAC objects are applied and a token for the ServiceAccount authenticates as it', async t => {
    const rbacKinds = new Set(['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'])
    const applied = await admin(['apply', '--server-side', '-f', '-'], yamlOf(all.filter(m => rbacKinds.has(m.kind))))
    t.equal(applied.code, 0, applied.stderr)
    const token = await admin(['create', 'token', NAME, '-n', NS, '--duration=10m'])
    t.equal(token.code, 0, token.stderr)
    saKubeconfig = cp.kubeconfigForToken(token.stdout.trim(), path.join(cp.dir, 'shc-sa.kubeconfig'))
    const who = await asSa(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'])
    t.equal(who.stdout, SA, who.stderr)
  })
  if (saKubeconfig === '') return

  await t.test('kubectl auth can-i, as the ServiceAccount: allowed', async t => {
    const results = await inBatches(ALLOWED, 6, c => asSa(['auth', 'can-i', ...c.args]))
    ALLOWED.forEach((c, i) => t.equal(results[i]?.stdout.trim(), 'yes', `can ${c.args.join(' ')} (${c.why}) ${results[i]?.stderr ?? ''}`))
  })

  await t.test('kubectl auth can-i, as the ServiceAccount: denied', async t => {
    const results = await inBatches(DENIED, 6, c => asSa(['auth', 'can-i', ...c.args]))
    DENIED.forEach((c, i) => t.equal(results[i]?.stdout.trim(), 'no', `cannot ${c.args.join(' ')} (${c.why}) ${results[i]?.stderr ?? ''}`))
    // `can-i create events` would resolve to whichever group kubectl prefers; ask the API
    // server about the core group explicitly: the controller never writes v1 Events.
    const review = await asSa(['create', '--raw', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', '-f', '-'], JSON.stringify({
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SelfSubjectAccessReview',
      spec: { resourceAttributes: { group: '', resource: 'events', verb: 'create', namespace: 'default' } }
    }))
    t.equal(review.code, 0, review.stderr)
    t.equal((JSON.parse(review.stdout || '{}') as { status?: { allowed?: boolean } }).status?.allowed, false, 'cannot create core v1 events')
  })

  await t.test('the API server lists exactly the intended rules for the account', async t => {
    // SelfSubjectRulesReview is the server's own account of what a subject may do in a
    // namespace: nothing granted by some other binding can hide from it.
    const rulesIn = async (namespace: string) => {
      const res = await asSa(['create', '--raw', '/apis/authorization.k8s.io/v1/selfsubjectrulesreviews', '-f', '-'], JSON.stringify({
        apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectRulesReview', spec: { namespace }
      }))
      t.equal(res.code, 0, res.stderr)
      const status = (JSON.parse(res.stdout || '{"status":{}}') as { status: { resourceRules: V1PolicyRule[], incomplete: boolean } }).status
      t.equal(status.incomplete, false, `complete answer for ${namespace}`)
      // Every authenticated user may ask about itself (system:basic-user): not ours to judge.
      return ruleKeys(status.resourceRules).filter(k => !/^authori[sz]ation\.k8s\.io\|selfsubject|^authentication\.k8s\.io\|selfsubject/.test(k))
    }
    t.same(await rulesIn(NS), [...CLUSTER_RULES, ...LEASE_RULES].sort(), `in ${NS}: cluster rules + the Lease`)
    t.same(await rulesIn('default'), [...CLUSTER_RULES].sort(), 'elsewhere: cluster rules only')
  })

  await t.test('the whole base runs: two replicas admitted under "restricted", on two nodes', async t => {
    // KWOK plays the kubelets: pods get scheduled and become Running without images.
    await cp.createFakeNodes([
      { name: 'shc-node-a', labels: { 'topology.kubernetes.io/zone': 'zone-a' } },
      { name: 'shc-node-b', labels: { 'topology.kubernetes.io/zone': 'zone-b' } }
    ])
    const applied = await admin(['apply', '--server-side', '-k', DEPLOY])
    t.equal(applied.code, 0, applied.stderr)
    const nodes = await waitFor('2 Running controller pods', async () => {
      const res = await admin(['get', 'pods', '-n', NS, '-l', 'app.kubernetes.io/name=self-healing-controller',
        '--field-selector=status.phase=Running', '-o', 'jsonpath={.items[*].spec.nodeName}'])
      const names = res.stdout.split(' ').filter(n => n !== '')
      return names.length === 2 ? names : undefined
    }, { timeoutMs: 60_000, intervalMs: 500 })
    t.equal(new Set(nodes).size, 2, `one replica per node: ${nodes.join(', ')}`)
    // The Service's selector finds them (EndpointSlice controller) and the PDB counts them.
    const endpoints = await waitFor('2 endpoints behind the Service', async () => {
      const res = await admin(['get', 'endpointslices', '-n', NS, '-l', `kubernetes.io/service-name=${NAME}`, '-o', 'jsonpath={.items[*].endpoints[*].targetRef.name}'])
      const names = res.stdout.split(' ').filter(n => n !== '')
      return names.length === 2 ? names : undefined
    }, { timeoutMs: 30_000 })
    t.equal(endpoints.length, 2)
    const allowed = await waitFor('the PDB to allow one disruption', async () => {
      const res = await admin(['get', 'pdb', NAME, '-n', NS, '-o', 'jsonpath={.status.expectedPods}/{.status.disruptionsAllowed}'])
      return res.stdout === '2/1' ? res.stdout : undefined
    }, { timeoutMs: 30_000 })
    t.equal(allowed, '2/1', 'expected 2 pods, 1 disruption allowed')
  })

  await t.test('real requests with the account\'s token: what the controller does works', async t => {
    const node = 'shc-node-a'
    const annotate = await asSa(['patch', 'node', node, '--type=merge', '-p', JSON.stringify({ metadata: { annotations: { 'self-healing-controller.io/phase': 'cordoned' } } })])
    t.equal(annotate.code, 0, said(`merge patch of a Node's annotations`, annotate))
    const cordon = await asSa(['patch', 'node', node, '--type=merge', '-p', '{"spec":{"unschedulable":true}}'])
    t.equal(cordon.code, 0, said(`cordon by merge patch`, cordon))
    const pods = await asSa(['get', 'pods', '--all-namespaces', `--field-selector=spec.nodeName=${node}`, '-o', 'name'])
    t.equal(pods.code, 0, pods.stderr)
    t.equal(pods.stdout.trim().split('\n').filter(l => l !== '').length, 1, 'one controller pod on the node')

    // Evicting one controller replica: allowed by RBAC and by the PDB (one of two may go).
    const [victim = ''] = pods.stdout.trim().split('\n').map(l => l.replace(/^pod\//, ''))
    const eviction = await asSa(['create', '--raw', `/api/v1/namespaces/${NS}/pods/${victim}/eviction`, '-f', '-'], JSON.stringify({
      apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: victim, namespace: NS }
    }))
    t.equal(eviction.code, 0, said(`eviction of ${victim}`, eviction))

    const event = await asSa(['create', '-f', '-'], JSON.stringify({
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: `${node}.shc-deploy-test`, namespace: 'default' },
      // MicroTime: the API server wants exactly six fractional digits.
      eventTime: new Date().toISOString().replace(/Z$/, '000Z'),
      reportingController: 'self-healing-controller.io/controller',
      reportingInstance: 'test',
      action: 'Cordon',
      reason: 'Cordoned',
      type: 'Normal',
      note: 'written by test/deploy/manifests.test.ts',
      regarding: { apiVersion: 'v1', kind: 'Node', name: node }
    }))
    t.equal(event.code, 0, said(`events.k8s.io/v1 Event`, event))
    // Written through events.k8s.io, read through core v1 as `kubectl describe node` does.
    const seen = await admin(['get', 'events', '-n', 'default', '--field-selector', `involvedObject.name=${node},reason=Cordoned`, '-o', 'name'])
    t.match(seen.stdout, /event/, 'visible through the core API')

    const lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: NAME, namespace: NS },
      spec: { holderIdentity: 'test-a', leaseDurationSeconds: 15 }
    }
    // The applied base runs no real controller (KWOK has no containers), so the Lease is free.
    const created = await asSa(['create', '-f', '-'], JSON.stringify(lease))
    t.equal(created.code, 0, said(`create the Lease`, created))
    const current = await asSa(['get', 'lease', NAME, '-n', NS, '-o', 'json'])
    t.equal(current.code, 0, said(`get the Lease`, current))
    const renewed = JSON.parse(current.stdout) as typeof lease & { metadata: { resourceVersion: string } }
    renewed.spec.holderIdentity = 'test-b'
    const updated = await asSa(['replace', '-f', '-'], JSON.stringify(renewed))
    t.equal(updated.code, 0, said(`update the Lease (with its resourceVersion)`, updated))

    const uncordon = await asSa(['patch', 'node', node, '--type=merge', '-p', '{"spec":{"unschedulable":null}}'])
    t.equal(uncordon.code, 0, uncordon.stderr)
  })

  await t.test('real requests with the account\'s token: the rest is Forbidden', async t => {
    const forbidden = async (what: string, args: string[], input?: string) => {
      const res = await asSa(args, input)
      t.not(res.code, 0, `${what} fails`)
      t.match(res.stderr, /forbidden/i, `${what}: ${res.stderr.trim()}`)
    }
    await forbidden('reading Secrets', ['get', 'secrets', '--all-namespaces'])
    await forbidden('reading ConfigMaps', ['get', 'configmaps', '-n', NS])
    const pod = (await admin(['get', 'pods', '-n', NS, '-o', 'jsonpath={.items[0].metadata.name}'])).stdout
    await forbidden('deleting a pod', ['delete', 'pod', pod, '-n', NS, '--wait=false'])
    const node = await admin(['get', 'node', 'shc-node-b', '-o', 'json'])
    await forbidden('replacing (updating) a Node', ['replace', '-f', '-'], node.stdout)
    await forbidden('deleting a Node', ['delete', 'node', 'shc-node-b', '--wait=false'])
    await forbidden('a Lease in kube-system', ['get', 'leases', '-n', 'kube-system'])
  })
})
