// The Helm chart (deploy/helm/self-healing-controller), checked against the real programs it is
// for: helm itself (lint, template, schema validation), the kustomize base it must equal (so the
// RBAC proof of test/deploy/manifests.test.ts covers it too), a real API server (server-side
// dry run, prometheus-operator's own CRDs included) and the controller, started with exactly
// the environment the chart's Deployment gives it.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { parseAllDocuments, stringify } from 'yaml'
import type {
  V1ClusterRole, V1ClusterRoleBinding, V1Container, V1Deployment, V1NetworkPolicy, V1PodDisruptionBudget,
  V1PodSpec, V1Role, V1Service, V1ServiceAccount
} from '@kubernetes/client-node'
import { options, parseConfig } from '../../src/config.ts'
import { classifyOptions, RBAC_SOURCES, type TableOption } from '../../scripts/helm/chart.ts'
import { startController } from '../support/controller.ts'
import { binariesForTest, startControlPlane, waitFor } from '../support/controlplane.ts'
import { helmForTest, helmTemplate, operatorCrdsForTest, repoRoot, chartDir, type Rendered } from '../support/helm.ts'
import { kustomize, pick, ruleKeys, run, said, type Manifest } from '../support/manifests.ts'

const NS = 'self-healing-controller'
// The release name that gives the kustomize base's object names.
const NAME = 'self-healing-controller'

const helm = helmForTest()
const bins = await binariesForTest()
const crds = operatorCrdsForTest()
const KUBECTL = bins.binDir === undefined ? 'kubectl' : path.join(bins.binDir, 'kubectl')
const HELM = helm.path ?? 'helm'

/** A value every config option accepts: its service default (bools switched on), or a sample. */
const SAMPLES: Record<string, unknown> = {
  host: '0.0.0.0',
  prometheusUrl: 'http://prometheus.monitoring.svc:9090',
  provider: 'none',
  awsRegion: 'eu-west-1',
  alertmanagerUrl: 'http://alertmanager.monitoring.svc:9093',
  remediationWindows: 'Mon-Fri 08:00-18:00 Europe/Berlin'
}
function sampleValue (key: string, option: TableOption): unknown {
  if (option.kind === 'bool') return true
  if (option.default === undefined) {
    if (!(key in SAMPLES)) throw new Error(`config.${key} has no service default: give it a sample in SAMPLES (test/deploy/helm.test.ts)`)
    return SAMPLES[key]
  }
  switch (option.kind) {
    case 'int': case 'number': return Number(option.default)
    case 'list': return option.default.split(',').map(s => s.trim()).filter(s => s !== '')
    default: return option.default
  }
}
/** How the service reads that value from its variable: what the rendered env must say. */
function expectedText (value: unknown): string {
  return Array.isArray(value) ? value.join(',') : String(value)
}

const table = options as unknown as Record<string, TableOption>
const { config: configOptions, tokens } = classifyOptions()
const allConfig = Object.fromEntries(configOptions.map(o => [o.key, sampleValue(o.key, table[o.key]!)]))

// Every switch on, every option set.
const ALL_ON = {
  namespace: { create: true },
  image: { repository: 'registry.example/shc', digest: `sha256:${'a'.repeat(64)}` },
  imagePullSecrets: [{ name: 'registry-credentials' }],
  replicaCount: 3,
  serviceAccount: { annotations: { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/shc' } },
  podAnnotations: { 'example.com/owner': 'platform' },
  podLabels: { team: 'platform' },
  priorityClassName: 'shc-test',
  tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'infra', effect: 'NoSchedule' }],
  networkPolicy: { fromNamespaces: ['monitoring', 'observability'] },
  providers: { clusterapi: { rbac: true }, karpenter: { rbac: true } },
  serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' } },
  prometheusRule: { enabled: true, labels: { release: 'kube-prometheus-stack' } },
  alertmanagerConfig: { enabled: true, labels: { alertmanagerConfig: 'shc' } },
  // Every token from a Secret of its own; the webhook one under a key other than the default.
  ...Object.fromEntries(tokens.map(tk => [tk.name, { existingSecret: `shc-${tk.name}`, key: tk.name === 'webhook' ? 'bearer' : 'token' }])),
  config: allConfig
} as Record<string, unknown> & { config: Record<string, unknown> }
const tokenValues = (name: string) => ALL_ON[name] as { existingSecret: string, key: string }

type Renders = { base: Manifest[], chart: Rendered, all: Rendered }
let renders: Renders | undefined
let renderError: string | undefined
if (helm.skip === undefined) {
  try {
    const [base, chart, all] = await Promise.all([kustomize(KUBECTL, path.join(repoRoot, 'deploy')), helmTemplate(HELM), helmTemplate(HELM, { values: ALL_ON })])
    renders = { base, chart, all }
  } catch (err) {
    renderError = (err as Error).message
  }
}
const skip = helm.skip ?? false

function deploymentOf (manifests: Manifest[], name = NAME): { d: V1Deployment, pod: V1PodSpec, c: V1Container } {
  const d = pick<V1Deployment>(manifests, 'Deployment', name)
  const pod = d.spec?.template.spec
  const c = pod?.containers[0]
  if (pod === undefined || c === undefined) throw new Error(`Deployment ${name} has no pod template or container`)
  return { d, pod, c }
}

t.test('helm lint --strict', { skip }, async t => {
  const plain = await run(HELM, ['lint', '--strict', chartDir])
  t.equal(plain.code, 0, said('default values', plain) + plain.stdout)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shc-helm-lint-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  fs.writeFileSync(path.join(dir, 'all.yaml'), stringify(ALL_ON))
  const all = await run(HELM, ['lint', '--strict', chartDir, '-f', path.join(dir, 'all.yaml')])
  t.equal(all.code, 0, said('every option set', all) + all.stdout)
})

t.test('the schema rejects bad values, naming them', { skip }, async t => {
  const cases: Array<{ set: string, why: string, error: RegExp }> = [
    { set: 'config.drainTimout=15m', why: 'an unknown (misspelt) key', error: /at '\/config': additional properties 'drainTimout' not allowed/ },
    { set: 'config.port=eighty', why: 'a mistyped value', error: /at '\/config\/port': got string, want null or integer/ },
    { set: 'config.logLevel=verbose', why: 'a value outside its enum', error: /at '\/config\/logLevel': value must be one of 'fatal', 'error'/ },
    { set: 'config.cooldown=5 minutes', why: 'a bad duration', error: /at '\/config\/cooldown': '5 minutes' does not match pattern/ },
    { set: 'config.webhookToken=s3cr3t', why: 'a token as a plain value', error: /additional properties 'webhookToken' not allowed/ },
    { set: 'image.pullpolicy=Always', why: 'an unknown key outside config', error: /at '\/image': additional properties 'pullpolicy' not allowed/ }
  ]
  for (const c of cases) {
    const res = await helmTemplate(HELM, { args: ['--set', c.set] })
    t.not(res.code, 0, `${c.why} fails: ${c.set}`)
    t.match(res.stderr, c.error, `${c.why}: ${res.stderr.trim()}`)
  }
})

t.test('default values: the kustomize base, object for object', { skip }, async t => {
  if (renders === undefined) return t.fail(renderError ?? 'no render')
  const { base, chart } = renders
  t.equal(chart.code, 0, chart.stderr)
  const kinds = (ms: Manifest[]) => ms.map(m => `${m.kind}/${m.metadata.name}`).sort()
  // The chart adds the generated webhook Secret; the Namespace is Helm's (-n --create-namespace) unless namespace.create.
  t.same(kinds(chart.manifests), kinds(base).filter(k => k !== `Namespace/${NS}`).concat(`Secret/${NAME}-webhook`).sort())
  for (const m of chart.manifests) {
    if (!['ClusterRole', 'ClusterRoleBinding'].includes(m.kind)) t.equal(m.metadata.namespace, NS, `${m.kind} in ${NS}`)
  }

  const b = deploymentOf(base)
  const c = deploymentOf(chart.manifests)
  const withoutSelector = (pod: V1PodSpec) => pod.topologySpreadConstraints?.map(({ labelSelector: _, ...rest }) => rest)
  t.same(c.pod.securityContext, b.pod.securityContext, 'pod securityContext')
  t.same(c.c.securityContext, b.c.securityContext, 'container securityContext')
  t.same(c.c.readinessProbe, b.c.readinessProbe, 'readiness probe')
  t.same(c.c.livenessProbe, b.c.livenessProbe, 'liveness probe')
  t.same(c.c.resources, b.c.resources, 'requests and limits')
  t.same(c.c.ports, b.c.ports, 'ports')
  t.same(withoutSelector(c.pod), withoutSelector(b.pod), 'spread over nodes (hard) and zones (soft)')
  for (const key of ['automountServiceAccountToken', 'enableServiceLinks', 'terminationGracePeriodSeconds', 'nodeSelector', 'priorityClassName', 'hostNetwork'] as const) {
    t.same(c.pod[key], b.pod[key], `pod ${key}`)
  }
  t.same(c.d.spec?.strategy, b.d.spec?.strategy, 'rollout never below the replica count')
  t.equal(c.d.spec?.replicas, b.d.spec?.replicas)
  t.same(c.c.volumeMounts, b.c.volumeMounts, 'the token mount and /tmp')
  t.same(c.pod.volumes?.map(v => ({ ...v, secret: v.secret && { ...v.secret, secretName: 'x' } })),
    b.pod.volumes?.map(v => ({ ...v, secret: v.secret && { ...v.secret, secretName: 'x' } })), 'volumes (same items, mode, size)')
  t.same(c.pod.volumes?.find(v => v.secret)?.secret?.secretName, `${NAME}-webhook`, 'the webhook token from the generated Secret')
  const envNames = (x: V1Container) => new Set(x.env?.map(e => e.name))
  t.same([...envNames(c.c)].filter(n => !envNames(b.c).has(n)), [], 'no variable the base does not set')
  for (const name of ['CLUSTER', 'WEBHOOK_TOKEN_FILE', 'POD_NAME', 'LEASE_NAMESPACE']) {
    t.same(c.c.env?.find(e => e.name === name), b.c.env?.find(e => e.name === name), name)
  }
  t.equal(pick<V1ServiceAccount>(chart.manifests, 'ServiceAccount', NAME).automountServiceAccountToken, false)
  t.same(pick<V1Service>(chart.manifests, 'Service', NAME).spec?.ports, pick<V1Service>(base, 'Service', NAME).spec?.ports)
  t.same(pick<V1NetworkPolicy>(chart.manifests, 'NetworkPolicy', NAME).spec?.ingress, pick<V1NetworkPolicy>(base, 'NetworkPolicy', NAME).spec?.ingress)
  const pdb = (ms: Manifest[]) => { const { selector: _, ...rest } = pick<V1PodDisruptionBudget>(ms, 'PodDisruptionBudget', NAME).spec ?? {}; return rest }
  t.same(pdb(chart.manifests), pdb(base), 'PodDisruptionBudget')
  // Selectors all pick the Deployment's pods.
  const podLabels = c.d.spec?.template.metadata?.labels ?? {}
  t.match(podLabels, c.d.spec?.selector.matchLabels)
  t.match(podLabels, pick<V1Service>(chart.manifests, 'Service', NAME).spec?.selector)
  t.match(podLabels, pick<V1NetworkPolicy>(chart.manifests, 'NetworkPolicy', NAME).spec?.podSelector?.matchLabels)
})

t.test('RBAC: rule for rule the kustomize base, so its kubectl auth can-i proof covers the chart', { skip }, async t => {
  if (renders === undefined) return t.fail(renderError ?? 'no render')
  const { base, chart } = renders
  const rules = (ms: Manifest[], kind: string, name: string) => ruleKeys(pick<V1ClusterRole>(ms, kind, name).rules)
  t.same(rules(chart.manifests, 'ClusterRole', NAME), rules(base, 'ClusterRole', NAME), 'ClusterRole')
  t.same(rules(chart.manifests, 'Role', `${NAME}-leader-election`), rules(base, 'Role', `${NAME}-leader-election`), 'Lease Role')
  t.ok(rules(base, 'ClusterRole', NAME).length > 5, 'not vacuous')
  for (const kind of ['ClusterRoleBinding', 'RoleBinding']) {
    const name = kind === 'RoleBinding' ? `${NAME}-leader-election` : NAME
    const of = (ms: Manifest[]) => pick<V1ClusterRoleBinding>(ms, kind, name)
    t.same(of(chart.manifests).roleRef, of(base).roleRef, `${kind} roleRef`)
    t.same(of(chart.manifests).subjects, of(base).subjects, `${kind} subjects`)
  }
  t.equal(chart.manifests.filter(m => m.kind === 'ClusterRole').length, 1, 'no optional ClusterRole by default')
})

t.test('every switch and option on', { skip }, async t => {
  if (renders === undefined) return t.fail(renderError ?? 'no render')
  const { all } = renders
  t.equal(all.code, 0, all.stderr)
  const { c, pod, d } = deploymentOf(all.manifests)

  t.test('the optional provider and force-delete ClusterRoles are the kustomize components\' rules', async t => {
    const component = (name: keyof typeof RBAC_SOURCES) => {
      const { file, kind } = RBAC_SOURCES[name]!
      const found = parseAllDocuments(fs.readFileSync(path.join(repoRoot, file), 'utf8')).map(doc => doc.toJS() as V1ClusterRole).find(o => o.kind === kind)
      return ruleKeys(found?.rules)
    }
    for (const [suffix, name] of [['clusterapi', 'clusterapi'], ['karpenter', 'karpenter'], ['force-delete', 'forceDelete']] as const) {
      t.same(ruleKeys(pick<V1ClusterRole>(all.manifests, 'ClusterRole', `${NAME}-${suffix}`).rules), component(name), suffix)
      t.same(pick<V1ClusterRoleBinding>(all.manifests, 'ClusterRoleBinding', `${NAME}-${suffix}`).subjects, [{ kind: 'ServiceAccount', name: NAME, namespace: NS }])
    }
  })

  t.test('each option set is the variable the option table names, written as the service reads it', async t => {
    for (const o of configOptions) {
      t.equal(c.env?.find(e => e.name === o.env)?.value, expectedText(allConfig[o.key]), `config.${o.key} → ${o.env}`)
    }
    // The whole environment, as the pod would have it, is a configuration the service accepts.
    const env = Object.fromEntries((c.env ?? []).map(e => [e.name, e.value ?? `from ${e.valueFrom?.fieldRef?.fieldPath}`]))
    const parsed = parseConfig([], env)
    t.not(parsed, 'help')
    if (parsed === 'help') return
    t.equal(parsed.bodyLimit, Number(table.bodyLimit!.default), 'a large integer is not written as 5.24288e+06')
    t.equal(parsed.cooldown, 30 * 60_000, 'a duration')
    t.same(parsed.nodeLabels, ['node', 'kubernetes_node'], 'a list')
    t.equal(parsed.breakerThreshold, 0.2, 'a fraction')
  })

  t.test('tokens come from their Secrets, as files', async t => {
    for (const token of tokens) {
      const file = c.env?.find(e => e.name === token.fileEnv)?.value ?? ''
      const mount = c.volumeMounts?.find(m => path.posix.dirname(file) === m.mountPath)
      const volume = pod.volumes?.find(v => v.name === mount?.name)
      t.equal(mount?.readOnly, true, `${token.fileEnv} mounted read-only`)
      t.equal(volume?.secret?.secretName, tokenValues(token.name).existingSecret)
      t.same(volume?.secret?.items, [{ key: tokenValues(token.name).key, path: path.posix.basename(file) }])
    }
    t.notOk(all.manifests.some(m => m.kind === 'Secret'), 'no Secret generated when one is given')
    t.notOk(c.env?.some(e => /_TOKEN$/.test(e.name)), 'no token in a variable')
  })

  t.test('the monitoring objects point at this release', async t => {
    const am = pick<{ spec: { route: { matchers: unknown[] }, receivers: Array<{ webhookConfigs: Array<{ url: string, httpConfig: unknown }> }> } }>(all.manifests, 'AlertmanagerConfig', NAME)
    const hook = am.spec.receivers[0]?.webhookConfigs[0]
    t.equal(hook?.url, `http://${NAME}.${NS}.svc:8080/v1/alerts`)
    t.same(hook?.httpConfig, { authorization: { type: 'Bearer', credentials: { name: tokenValues('webhook').existingSecret, key: tokenValues('webhook').key } } })
    t.same(am.spec.route.matchers, [{ name: 'remediation', matchType: '=~', value: 'drain|reboot|replace' }])
    type Groups = { spec: { groups: Array<{ name: string }> } }
    const rules = pick<Groups>(all.manifests, 'PrometheusRule', NAME)
    const operator = parseAllDocuments(fs.readFileSync(path.join(repoRoot, 'deploy/prometheus-operator/prometheusrule.yaml'), 'utf8'))[0]?.toJS() as Groups
    const byName = (groups: Groups['spec']['groups']) => [...groups].sort((a, b) => a.name.localeCompare(b.name))
    t.same(byName(rules.spec.groups), byName(operator.spec.groups), 'every group of deploy/prometheus-operator/prometheusrule.yaml, unchanged')
    t.match(JSON.stringify(rules), /\{\{ \$labels\.node \}\}/, 'alert templates are left for Prometheus')
    const sm = pick<{ spec: { selector: { matchLabels: unknown }, endpoints: unknown[] } }>(all.manifests, 'ServiceMonitor', NAME)
    t.same(sm.spec.selector.matchLabels, d.spec?.selector.matchLabels)
    t.match(sm.spec.endpoints, [{ port: 'http', path: '/metrics' }])
  })

  t.test('settings other objects must agree with follow the values', async t => {
    const res = await helmTemplate(HELM, { values: { config: { port: 9443, leaseName: 'shc-leader' } } })
    t.equal(res.code, 0, res.stderr)
    const { c } = deploymentOf(res.manifests)
    t.equal(c.ports?.[0]?.containerPort, 9443)
    t.same(pick<V1Service>(res.manifests, 'Service', NAME).spec?.ports?.map(p => p.port), [9443])
    t.same(pick<V1NetworkPolicy>(res.manifests, 'NetworkPolicy', NAME).spec?.ingress?.[0]?.ports?.map(p => p.port), [9443])
    t.same(pick<V1Role>(res.manifests, 'Role', `${NAME}-leader-election`).rules?.find(r => r.resourceNames)?.resourceNames, ['shc-leader'])
    t.equal(c.env?.find(e => e.name === 'LEASE_NAME')?.value, 'shc-leader')
    const one = await helmTemplate(HELM, { values: { replicaCount: 1 } })
    t.notOk(one.manifests.some(m => m.kind === 'PodDisruptionBudget'), 'no PodDisruptionBudget that would block every drain of a single replica')
    const faults = await helmTemplate(HELM, { values: { config: { faultsEnabled: true } } })
    t.not(faults.code, 0)
    t.match(faults.stderr, /faults\.existingSecret: config\.faultsEnabled needs its own token Secret/)
  })
})

t.test('on a real API server', { skip: skip || (bins.skip ?? crds.skip ?? false), timeout: 240_000 }, async t => {
  if (renders === undefined) return t.fail(renderError ?? 'no render')
  const cp = await startControlPlane({ binDir: bins.binDir })
  t.teardown(() => cp.stop())
  const yamlOf = (ms: Manifest[]) => ms.map(m => stringify(m)).join('---\n')
  const crdFiles = ['servicemonitors', 'prometheusrules', 'alertmanagerconfigs'].map(r => path.join(crds.path!, `monitoring.coreos.com_${r}.yaml`))
  // Server-side: the AlertmanagerConfig CRD is too large for client-side apply's annotation.
  const installed = await cp.kubectl(['apply', '--server-side', ...crdFiles.flatMap(f => ['-f', f])])
  t.equal(installed.code, 0, installed.stderr)
  // Polled rather than `kubectl wait`, which errors when asked before the CRD has any status.
  for (const resource of ['servicemonitors', 'prometheusrules', 'alertmanagerconfigs']) {
    await waitFor(`CRD ${resource} established`, async () => {
      const res = await cp.kubectl(['get', `crd/${resource}.monitoring.coreos.com`, '-o', 'jsonpath={.status.conditions[?(@.type=="Established")].status}'])
      return res.stdout === 'True'
    }, { timeoutMs: 60_000 })
  }

  for (const [what, rendered] of [['default values', renders.chart], ['every option on', renders.all]] as const) {
    await t.test(`kubectl apply --server-side --dry-run=server: ${what}`, async t => {
      // A dry run creates nothing, so what the objects need must exist for real first: the
      // namespace (as `helm install --create-namespace` or namespace.create would make it) and
      // the PriorityClass the all-on values name.
      const ns = rendered.manifests.find(m => m.kind === 'Namespace') ?? { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } }
      const pc = { apiVersion: 'scheduling.k8s.io/v1', kind: 'PriorityClass', metadata: { name: 'shc-test' }, value: 1000000 }
      const prereq = await cp.kubectl(['apply', '--server-side', '-f', '-'], { input: yamlOf([ns as Manifest, pc as unknown as Manifest]) })
      t.equal(prereq.code, 0, prereq.stderr)
      const dry = await cp.kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], { input: yamlOf(rendered.manifests) })
      t.equal(dry.code, 0, dry.stderr)
      t.equal(dry.stdout.match(/\(server dry run\)/g)?.length, rendered.manifests.length, 'every object went through the server')
      t.notMatch(dry.stderr, /PodSecurity|Warning/i, 'no Pod Security (or other) warning')
    })
  }

  await t.test('helm install and upgrade: a bad value stops the install; the generated token survives an upgrade', async t => {
    const helmAt = (args: string[]) => run(HELM, [...args, '--kubeconfig', cp.kubeconfigPath, '-n', NS])
    const bad = await helmAt(['install', NAME, chartDir, '--set', 'config.port=eighty'])
    t.not(bad.code, 0)
    t.match(bad.stderr, /at '\/config\/port': got string/, 'helm install names the value')
    const installed = await helmAt(['install', NAME, chartDir])
    t.equal(installed.code, 0, installed.stderr)
    t.match(installed.stdout, /Webhook: +http:\/\/self-healing-controller\.self-healing-controller\.svc:8080\/v1\/alerts/, 'NOTES say where Alertmanager posts')
    t.match(installed.stdout, /kubectl get nodes -L self-healing-controller\.io\/phase/, 'and how to watch a node')
    const tokenOf = async () => (await cp.kubectl(['get', 'secret', `${NAME}-webhook`, '-n', NS, '-o', 'jsonpath={.data.token}'])).stdout
    const before = await tokenOf()
    t.ok(before.length >= 48, 'a random token was generated')
    const upgraded = await helmAt(['upgrade', NAME, chartDir, '--set', 'config.logLevel=debug'])
    t.equal(upgraded.code, 0, upgraded.stderr)
    t.equal(await tokenOf(), before, 'looked up and kept, so Alertmanager\'s copy stays valid')
    const env = await cp.kubectl(['get', 'deployment', NAME, '-n', NS, '-o', 'jsonpath={.spec.template.spec.containers[0].env[?(@.name=="LOG_LEVEL")].value}'])
    t.equal(env.stdout, 'debug', 'the upgrade itself went through')
  })

  for (const [what, rendered] of [['default values', renders.chart], ['every option on', renders.all]] as const) {
    await t.test(`a controller with the rendered Deployment's environment becomes ready: ${what}`, async t => {
      // The chart's own RBAC, for real, and a token of its ServiceAccount for the controller.
      const rbacKinds = new Set(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'])
      const applied = await cp.kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], { input: yamlOf(rendered.manifests.filter(m => rbacKinds.has(m.kind))) })
      t.equal(applied.code, 0, applied.stderr)
      const token = await cp.kubectl(['create', 'token', NAME, '-n', NS, '--duration=10m'])
      t.equal(token.code, 0, token.stderr)
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shc-helm-controller-'))
      t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
      const kubeconfig = cp.kubeconfigForToken(token.stdout.trim(), path.join(dir, 'sa.kubeconfig'))

      // The pod's environment, resolved as the kubelet would: downward API fields, and files
      // under each mounted Secret (a test token per Secret, in a temp dir standing for the mount).
      const { c, pod } = deploymentOf(rendered.manifests)
      const podName = `${NAME}-test-${what === 'default values' ? 'a' : 'b'}`
      const fields: Record<string, string> = { 'metadata.name': podName, 'metadata.namespace': NS }
      const mounts = new Map<string, string>()
      for (const m of c.volumeMounts ?? []) {
        const secret = pod.volumes?.find(v => v.name === m.name)?.secret
        if (secret === undefined) continue
        const local = path.join(dir, m.name)
        fs.mkdirSync(local)
        for (const item of secret.items ?? []) fs.writeFileSync(path.join(local, item.path), `test-${m.name}-${item.key}\n`)
        mounts.set(m.mountPath, local)
      }
      const env: Record<string, string> = {}
      for (const e of c.env ?? []) {
        const field = e.valueFrom?.fieldRef?.fieldPath
        if (e.valueFrom !== undefined && field === undefined) return t.fail(`${e.name}: only fieldRef is resolved here, extend the test`)
        let value = field === undefined ? e.value ?? '' : fields[field]
        if (value === undefined) return t.fail(`${e.name}: unknown field ${field}`)
        for (const [mountPath, local] of mounts) if (value.startsWith(`${mountPath}/`)) value = local + value.slice(mountPath.length)
        env[e.name] = value
      }
      t.ok(env.WEBHOOK_TOKEN_FILE?.startsWith(dir), 'the webhook token file resolves into the mounted Secret')
      // What differs from the pod: the API server's address (a kubeconfig for the token instead
      // of in-cluster variables) and the listen address (loopback, a free port).
      const controller = await startController(podName, dir, { ...env, KUBECONFIG: kubeconfig, HOST: '127.0.0.1', PORT: '0' })
      t.teardown(() => controller.kill('SIGTERM'))
      const ready = await waitFor('/readyz 200', async () => {
        const res = await controller.get('/readyz')
        return res.status === 200 ? res.body : undefined
      }, { timeoutMs: 30_000, intervalMs: 250 })
      t.equal(ready.status, 'ready', JSON.stringify(ready))
      const nodes = await controller.get('/v1/nodes')
      t.equal(nodes.status, 200, 'the API accepts the token read from the mounted file')
      await controller.kill('SIGTERM')
    })
  }
})
