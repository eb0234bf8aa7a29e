import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CoreV1Api, type V1Node } from '@kubernetes/client-node'
import { parseAllDocuments } from 'yaml'
import { iso } from '../../src/time.ts'
import { startController, type ControllerProcess } from './controller.ts'
import { startControlPlane, waitFor, type ControlPlaneOptions } from './controlplane.ts'

/**
 * One integration scenario's world: a real control plane, the RBAC from deploy/ applied as is, a
 * ServiceAccount token bound to exactly that ClusterRole (the controller runs with it), KWOK
 * nodes in pools, and workloads. Everything is torn down by `stop()`.
 */
export const saUser = 'system:serviceaccount:self-healing-controller:self-healing-controller'
const rbacKinds = new Set(['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'])

/** Settings that make a scenario run in seconds; each scenario overrides what it studies. */
export const fastEnv: Record<string, string> = {
  CLUSTER: 'kubernetes',
  PROVIDER: 'none',
  MIN_FIRING_AGE: '0s',
  POOL_SPACING: '0s',
  STORM_SETTLE: '0s',
  VERIFY_DWELL: '2s',
  RECONCILE_INTERVAL: '1s',
  DRAIN_TIMEOUT: '60s',
  EVICTION_BACKOFF: '200ms',
  EVICTION_BACKOFF_MAX: '1s',
  LEASE_DURATION: '4s',
  LEASE_RENEW_DEADLINE: '3s',
  LEASE_RETRY_PERIOD: '500ms',
  BREAKER_MIN_NODES: '3'
}

export type Scenario = Awaited<ReturnType<typeof startScenario>>

/** `controlPlane`: extra settings, e.g. the scale benchmark's client rate limits for thousands of nodes. */
export async function startScenario (binDir: string, controlPlane: Omit<ControlPlaneOptions, 'binDir'> = {}) {
  const cp = await startControlPlane({ ...controlPlane, binDir })
  const dir = mkdtempSync(join(tmpdir(), 'shc-scenario-'))
  const controllers: ControllerProcess[] = []
  const kube = cp.kubeConfig()
  const core = kube.makeApiClient(CoreV1Api)

  const rendered = await cp.kubectl(['kustomize', new URL('../../deploy/', import.meta.url).pathname])
  if (rendered.code !== 0) throw new Error(`kubectl kustomize deploy/: ${rendered.stderr}`)
  const rbac = parseAllDocuments(rendered.stdout).map(d => d.toJSON()).filter(o => rbacKinds.has(o?.kind))
  const applied = await cp.kubectl(['apply', '-f', '-'], { input: rbac.map(o => JSON.stringify(o)).join('\n') })
  if (applied.code !== 0) throw new Error(`applying deploy/ RBAC: ${applied.stderr}`)
  const token = await cp.kubectl(['create', 'token', 'self-healing-controller', '-n', 'self-healing-controller', '--duration=2h'])
  if (token.code !== 0) throw new Error(`kubectl create token: ${token.stderr}`)
  const controllerKubeconfig = cp.kubeconfigForToken(token.stdout.trim(), join(dir, 'controller.kubeconfig'))

  return {
    cp,
    dir,
    core,
    controllerKubeconfig,
    /** KWOK nodes `${pool}-1..n`, alternating zones, labelled as the controller's defaults expect. */
    async nodes (pool: string, count: number): Promise<string[]> {
      const names = Array.from({ length: count }, (_, i) => `${pool}-${i + 1}`)
      await cp.createFakeNodes(names.map((name, i) => ({
        name,
        labels: { pool, 'topology.kubernetes.io/zone': i % 2 === 0 ? 'zone-a' : 'zone-b' },
        providerID: `kwok:///${i % 2 === 0 ? 'zone-a' : 'zone-b'}/${name}`
      })))
      return names
    },
    /** A Deployment kept to one pool, and optionally a PDB, waiting until every replica runs. */
    async deploy (name: string, pool: string, replicas: number, pdb?: { minAvailable?: number, maxUnavailable?: number }) {
      const objects: unknown[] = [{
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name, namespace: 'default' },
        spec: {
          replicas,
          selector: { matchLabels: { app: name } },
          template: {
            metadata: { labels: { app: name } },
            spec: {
              nodeSelector: { pool },
              tolerations: [{ key: 'kwok.x-k8s.io/node', operator: 'Exists', effect: 'NoSchedule' }],
              containers: [{ name: 'app', image: 'registry.example/app:1' }]
            }
          }
        }
      }]
      if (pdb !== undefined) objects.push({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name, namespace: 'default' }, spec: { ...pdb, selector: { matchLabels: { app: name } } } })
      const result = await cp.kubectl(['apply', '-f', '-'], { input: objects.map(o => JSON.stringify(o)).join('\n') })
      if (result.code !== 0) throw new Error(`deploy ${name}: ${result.stderr}`)
      await waitFor(`${replicas} ${name} pods running`, async () => (await this.pods(name)).filter(p => p.status?.phase === 'Running' && p.metadata?.deletionTimestamp === undefined).length === replicas, { timeoutMs: 60_000 })
    },
    /** Lets a blocking PodDisruptionBudget allow disruptions again. */
    async relax (pdb: string) {
      const result = await cp.kubectl(['patch', 'pdb', pdb, '-n', 'default', '--type=merge', '-p', '{"spec":{"minAvailable":0}}'])
      if (result.code !== 0) throw new Error(`relax ${pdb}: ${result.stderr}`)
    },
    async cordoned (names: readonly string[]): Promise<string[]> {
      const nodes = (await core.listNode()).items
      return nodes.filter(n => names.includes(n.metadata!.name!) && n.spec?.unschedulable === true).map(n => n.metadata!.name!)
    },
    async leaseHolder (): Promise<string | undefined> {
      const result = await cp.kubectl(['get', 'lease', '-n', 'self-healing-controller', 'self-healing-controller', '-o', 'jsonpath={.spec.holderIdentity}'])
      return result.code === 0 && result.stdout !== '' ? result.stdout : undefined
    },
    async pods (app: string) {
      return (await core.listNamespacedPod({ namespace: 'default', labelSelector: `app=${app}` })).items
    },
    async node (name: string): Promise<V1Node> {
      return await core.readNode({ name })
    },
    async phase (name: string): Promise<string | undefined> {
      return (await core.readNode({ name })).metadata?.annotations?.['self-healing-controller.io/phase']
    },
    async state (name: string): Promise<any> {
      const text = (await core.readNode({ name })).metadata?.annotations?.['self-healing-controller.io/state']
      return text === undefined ? undefined : JSON.parse(text)
    },
    async controller (name: string, env: Record<string, string> = {}) {
      const controller = await startController(name, dir, { ...fastEnv, KUBECONFIG: controllerKubeconfig, ...env })
      controllers.push(controller)
      return controller
    },
    /** The controller's kubeconfig, but reaching the API server through `server` (a proxy). */
    kubeconfigVia (server: string, name: string): string {
      const path = join(dir, `${name}.kubeconfig`)
      writeFileSync(path, readFileSync(controllerKubeconfig, 'utf8').replace(cp.server, server))
      return path
    },
    /** Mutating requests the controller's ServiceAccount made, from the API server's audit log. */
    mutationsByController () {
      return cp.readAuditEvents().filter(e => e.user.username === saUser && ['create', 'update', 'patch', 'delete', 'deletecollection'].includes(e.verb))
    },
    async stop () {
      for (const controller of controllers) await controller.kill('SIGKILL')
      await cp.stop()
      if (process.env.SHC_KEEP_CONTROLPLANE === undefined) rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** When the alerts of a scenario started firing: the same in every notification, as Alertmanager sends it. */
const episodeStart = Date.now() - 10 * 60_000

/** An Alertmanager v4 notification for the given nodes, as the real one is shaped. */
export function notification (nodes: readonly string[], options: { status?: 'firing' | 'resolved', alertname?: string, startsAt?: number } = {}) {
  const status = options.status ?? 'firing'
  const alertname = options.alertname ?? 'NodeDiskIOPSSaturated'
  const startsAt = iso(options.startsAt ?? episodeStart)
  return {
    version: '4',
    status,
    receiver: 'self-healing-controller',
    groupKey: `{}:{alertname="${alertname}"}`,
    truncatedAlerts: 0,
    groupLabels: { alertname },
    commonLabels: { alertname },
    commonAnnotations: {},
    externalURL: 'http://alertmanager.test',
    alerts: nodes.map(node => ({
      status,
      labels: { alertname, node, remediation: 'drain', severity: 'critical' },
      annotations: { summary: `disk saturated on ${node}`, value: '0.97' },
      startsAt,
      endsAt: status === 'firing' ? '0001-01-01T00:00:00Z' : iso(Date.now()),
      generatorURL: 'http://prometheus.test/graph',
      fingerprint: `fp-${alertname}-${node}`
    }))
  }
}
