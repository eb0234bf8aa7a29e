import { ApiException, ApisApi, CustomObjectsApi } from '@kubernetes/client-node'
import type { ConfigurationOptions, KubeConfig, V1Node } from '@kubernetes/client-node'
import {
  abortedBeforeActing,
  classifyKubeError,
  DEFAULT_REQUEST_TIMEOUT_MS,
  FinishedRemediations,
  isConflict,
  isObjectNotFound,
  kubeCallOptions,
  listAllPages,
  replaceOnly,
  requestSignal,
  type KubeMeta,
  type KubeOperation
} from './kube-calls.ts'
import { ProviderError } from './provider.ts'
import type { Provider, ProviderRequest, ProviderResult } from './provider.ts'

const GROUP = 'cluster.x-k8s.io'
const PROVIDER = 'clusterapi'

/** Annotation on a Machine asking MachineHealthCheck to mark it unhealthy, so that its owner (MachineSet, KCP) replaces it. */
export const REMEDIATE_MACHINE_ANNOTATION = 'cluster.x-k8s.io/remediate-machine'
/** Annotations Cluster API sets on every Node it manages: the Machine's name and namespace. */
export const MACHINE_ANNOTATION = 'cluster.x-k8s.io/machine'
export const CLUSTER_NAMESPACE_ANNOTATION = 'cluster.x-k8s.io/cluster-namespace'
export const CLUSTER_NAME_ANNOTATION = 'cluster.x-k8s.io/cluster-name'
/** Label on Machines; MachineHealthCheck adds it to its own selector. */
const CLUSTER_NAME_LABEL = 'cluster.x-k8s.io/cluster-name'
/** MachineHealthCheck leaves a Machine carrying either of these alone. */
const SKIP_REMEDIATION_ANNOTATION = 'cluster.x-k8s.io/skip-remediation'
const PAUSED_ANNOTATION = 'cluster.x-k8s.io/paused'
const FIELD_MANAGER = 'self-healing-controller'
const MERGE_PATCH = 'application/merge-patch+json'

export type ClusterApiVersion = 'v1beta2' | 'v1beta1'

export type ClusterApiProviderOptions = {
  /** Kubeconfig of the cluster holding the Machines: the management cluster (the same cluster when self-hosted). */
  kubeConfig: KubeConfig
  /** Machine API version; by default discovered once (v1beta2 where served, else v1beta1). Both carry the fields used. */
  apiVersion?: ClusterApiVersion
  /**
   * Refuse `replace` unless a MachineHealthCheck selects the Machine (default true): the annotation
   * does nothing by itself, so without one the node would be reported replaced and never be.
   */
  requireMachineHealthCheck?: boolean
  /** Bound on each HTTP request; default 30 s. The remediation's signal still cuts it shorter. */
  requestTimeoutMs?: number
}

type Machine = {
  metadata?: KubeMeta
  spec?: { clusterName?: string, providerID?: string }
  status?: { nodeRef?: { name?: string } }
}

type LabelSelector = {
  matchLabels?: Record<string, string>
  matchExpressions?: Array<{ key?: string, operator?: string, values?: string[] }>
}

type MachineHealthCheck = {
  metadata?: KubeMeta
  spec?: { clusterName?: string, selector?: LabelSelector }
}

/** Label selector semantics (matchLabels AND matchExpressions), as MachineHealthCheck applies them to Machines. */
export function selectorMatches (selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  for (const [key, value] of Object.entries(selector?.matchLabels ?? {})) {
    if (labels[key] !== value) return false
  }
  for (const { key, operator, values = [] } of selector?.matchExpressions ?? []) {
    if (key === undefined) return false
    const has = Object.hasOwn(labels, key)
    const value = labels[key]
    switch (operator) {
      case 'In': if (!has || value === undefined || !values.includes(value)) return false; break
      case 'NotIn': if (has && value !== undefined && values.includes(value)) return false; break
      case 'Exists': if (!has) return false; break
      case 'DoesNotExist': if (has) return false; break
      default: return false
    }
  }
  return true
}

function ref (meta: KubeMeta | undefined): string {
  return `${meta?.namespace ?? '?'}/${meta?.name ?? '?'}`
}

function controllerOf (meta: KubeMeta | undefined): { kind: string, name: string } | undefined {
  const owner = meta?.ownerReferences?.find(o => o.controller === true)
  return owner === undefined ? undefined : { kind: owner.kind ?? '?', name: owner.name ?? '?' }
}

/**
 * Cluster API provider: `replace` sets `cluster.x-k8s.io/remediate-machine: ""` on the node's Machine
 * (a merge patch guarded by resourceVersion), so MachineHealthCheck marks it unhealthy and its owner
 * (MachineSet, KubeadmControlPlane) deletes and recreates it. Cluster API drains the node again
 * before deleting the Machine; ours has already emptied it, respecting PDBs.
 *
 * - Finds the Machine from the node annotations `cluster.x-k8s.io/machine` + `cluster.x-k8s.io/cluster-namespace`,
 *   else by a Machine whose `status.nodeRef.name` is the node (or whose `spec.providerID` is the node's).
 * - Idempotent: a Machine already annotated, already deleting, or gone counts as done, with no write.
 * - Refuses (non-retryable) a Machine with `cluster.x-k8s.io/skip-remediation`, one without a controller
 *   owner (nothing would recreate it) and, unless `requireMachineHealthCheck: false`, one no MachineHealthCheck selects.
 * - `reboot` is refused: Cluster API has no reboot, its remediation is delete-and-recreate.
 * - `none` makes no API call.
 */
export function createClusterApiProvider (options: ClusterApiProviderOptions): Provider {
  const objects = options.kubeConfig.makeApiClient(CustomObjectsApi)
  const apis = options.kubeConfig.makeApiClient(ApisApi)
  const timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
  const requireMhc = options.requireMachineHealthCheck ?? true
  const finished = new FinishedRemediations()
  let discovered: Promise<ClusterApiVersion> | undefined

  /** One API call under the request's signal and our timeout; failures become ProviderErrors unless `raw` (the caller handles 404/409). */
  async function call<T> (op: Omit<KubeOperation, 'provider'>, signal: AbortSignal, fn: (opts: ConfigurationOptions) => Promise<T>, extra: { contentType?: string, raw?: boolean } = {}): Promise<T> {
    try {
      return await fn(kubeCallOptions(requestSignal(signal, timeoutMs), extra.contentType))
    } catch (err) {
      if (extra.raw === true && (isObjectNotFound(err) || isConflict(err))) throw err
      throw classifyKubeError(err, { provider: PROVIDER, ...op }, signal, timeoutMs)
    }
  }

  async function discover (signal: AbortSignal): Promise<ClusterApiVersion> {
    let groups
    try {
      groups = await apis.getAPIVersions(undefined, kubeCallOptions(requestSignal(signal, timeoutMs)))
    } catch (err) {
      if (err instanceof ApiException && err.code === 403 && !signal.aborted) {
        throw new ProviderError(`${PROVIDER}: API discovery (GET /apis) is forbidden; the identity needs the system:discovery ClusterRole (every authenticated user has it by default)`, { retryable: false, cause: err })
      }
      throw classifyKubeError(err, { provider: PROVIDER, verb: 'get', resource: 'apis', group: '(discovery)' }, signal, timeoutMs)
    }
    const group = groups.groups.find(g => g.name === GROUP)
    if (group === undefined) {
      throw new ProviderError(`${PROVIDER}: the API group ${GROUP} is not served; is Cluster API installed, and does the kubeconfig point at the management cluster?`, { retryable: false })
    }
    const served = group.versions.map(v => v.version)
    for (const version of ['v1beta2', 'v1beta1'] as const) if (served.includes(version)) return version
    throw new ProviderError(`${PROVIDER}: ${GROUP} serves ${served.join(', ')}, none of which this provider knows (v1beta2, v1beta1)`, { retryable: false })
  }

  async function machineVersion (signal: AbortSignal): Promise<ClusterApiVersion> {
    if (options.apiVersion !== undefined) return options.apiVersion
    discovered ??= discover(signal)
    try {
      return await discovered
    } catch (err) {
      discovered = undefined // let the next call look again
      throw err
    }
  }

  async function getMachine (version: string, namespace: string, name: string, signal: AbortSignal): Promise<Machine | undefined> {
    try {
      return await call({ verb: 'get', resource: 'machines', group: GROUP, namespace, name }, signal,
        opts => objects.getNamespacedCustomObject({ group: GROUP, version, namespace, plural: 'machines', name }, opts), { raw: true }) as Machine
    } catch (err) {
      if (isObjectNotFound(err)) return undefined
      throw classifyKubeError(err, { provider: PROVIDER, verb: 'get', resource: 'machines', group: GROUP, namespace, name }, signal, timeoutMs)
    }
  }

  async function listMachines (version: string, namespace: string | undefined, signal: AbortSignal): Promise<Machine[]> {
    const op = { verb: 'list', resource: 'machines', group: GROUP, ...(namespace !== undefined ? { namespace } : {}) } as const
    return await listAllPages<Machine>(cont => call(op, signal, opts => namespace !== undefined
      ? objects.listNamespacedCustomObject({ group: GROUP, version, namespace, plural: 'machines', limit: 500, _continue: cont }, opts)
      : objects.listClusterCustomObject({ group: GROUP, version, plural: 'machines', limit: 500, _continue: cont }, opts)))
  }

  type Found = { machine: Machine, how: string } | { gone: string } | { missing: string }

  async function findMachine (node: V1Node, version: string, signal: AbortSignal): Promise<Found> {
    const nodeName = node.metadata?.name ?? ''
    const annotations = node.metadata?.annotations ?? {}
    const name = annotations[MACHINE_ANNOTATION]
    const namespace = annotations[CLUSTER_NAMESPACE_ANNOTATION]
    const clusterName = annotations[CLUSTER_NAME_ANNOTATION]
    const providerID = node.spec?.providerID ?? ''
    const annotated = name !== undefined && name !== '' && namespace !== undefined && namespace !== ''
    if (annotated) {
      const machine = await getMachine(version, namespace, name, signal)
      if (machine === undefined) {
        return { gone: `Machine ${namespace}/${name}, named by the node's ${MACHINE_ANNOTATION} annotation, no longer exists` }
      }
      const refName = machine.status?.nodeRef?.name
      // a Machine that already moved on to another node is not this node's machine any more
      if (refName === undefined || refName === '' || refName === nodeName) return { machine, how: `named by the node's ${MACHINE_ANNOTATION} annotation` }
    }
    const scope = namespace !== undefined && namespace !== '' ? namespace : undefined
    const matches = (await listMachines(version, scope, signal)).filter(m => {
      if (clusterName !== undefined && m.spec?.clusterName !== undefined && m.spec.clusterName !== clusterName) return false
      return m.status?.nodeRef?.name === nodeName || (providerID !== '' && m.spec?.providerID === providerID)
    })
    // two clusters managed from one place can both have a node of this name; the providerID tells them apart
    const best = matches.length > 1 ? matches.filter(m => m.status?.nodeRef?.name === nodeName && providerID !== '' && m.spec?.providerID === providerID) : matches
    if (best.length === 1 && best[0] !== undefined) return { machine: best[0], how: `found by status.nodeRef.name / spec.providerID${scope !== undefined ? ` in namespace ${scope}` : ''}` }
    if (best.length > 1 || matches.length > 1) {
      throw new ProviderError(`${PROVIDER}: node ${nodeName} matches several Machines (${matches.map(m => ref(m.metadata)).join(', ')}); refusing to guess which one to replace`, { retryable: false })
    }
    return {
      missing: `no Cluster API Machine found for node ${nodeName}: ` +
        (annotated ? `the Machine its annotations name (${namespace}/${name}) points at another node, and ` : `the node lacks the ${MACHINE_ANNOTATION} / ${CLUSTER_NAMESPACE_ANNOTATION} annotations, and `) +
        `no Machine ${scope !== undefined ? `in namespace ${scope}` : 'in any namespace'} has status.nodeRef.name=${nodeName}` +
        (providerID !== '' ? ` or spec.providerID=${providerID}` : '') +
        '; is the node managed by Cluster API, and does the kubeconfig point at the management cluster?'
    }
  }

  async function coveringHealthCheck (machine: Machine, version: string, signal: AbortSignal): Promise<MachineHealthCheck> {
    const namespace = machine.metadata?.namespace ?? ''
    const op = { verb: 'list', resource: 'machinehealthchecks', group: GROUP, namespace } as const
    const checks = await listAllPages<MachineHealthCheck>(cont => call(op, signal,
      opts => objects.listNamespacedCustomObject({ group: GROUP, version, namespace, plural: 'machinehealthchecks', limit: 500, _continue: cont }, opts)))
    const labels = machine.metadata?.labels ?? {}
    // MachineHealthCheck selects with its selector plus cluster-name=<spec.clusterName>, in its own namespace
    const found = checks.find(c => labels[CLUSTER_NAME_LABEL] === c.spec?.clusterName && selectorMatches(c.spec?.selector, labels))
    if (found === undefined) {
      throw new ProviderError(
        `${PROVIDER}: refusing to replace Machine ${ref(machine.metadata)}: no MachineHealthCheck in namespace ${namespace} selects it ` +
          `(${checks.length} checked), so the ${REMEDIATE_MACHINE_ANNOTATION} annotation would never be acted on; create one for its cluster ` +
          '(or set requireMachineHealthCheck: false if something else honours the annotation)',
        { retryable: false }
      )
    }
    return found
  }

  async function replace (request: ProviderRequest, nodeName: string): Promise<ProviderResult> {
    const { signal, remediationId } = request
    const version = await machineVersion(signal)
    const found = await findMachine(request.node, version, signal)
    if ('gone' in found) return { detail: `${PROVIDER}: ${found.gone}; the machine behind node ${nodeName} is already replaced, nothing to do (remediation ${remediationId})`, outcome: 'not-performed' }
    if ('missing' in found) {
      const earlier = finished.get(nodeName, remediationId)
      if (earlier !== undefined) return { detail: `${PROVIDER}: the Machine behind node ${nodeName} is gone since this remediation annotated it; nothing more to do (earlier: ${earlier})`, outcome: 'replacing' }
      throw new ProviderError(`${PROVIDER}: ${found.missing}`, { retryable: false })
    }
    let machine = found.machine
    for (let attempt = 1; ; attempt++) {
      const meta = machine.metadata ?? {}
      const who = `Machine ${ref(meta)} (node ${nodeName}, ${found.how})`
      if (meta.deletionTimestamp !== undefined) {
        return { detail: `${PROVIDER}: ${who} is already being deleted (since ${meta.deletionTimestamp}); its owner replaces it, nothing to do (remediation ${remediationId})`, outcome: 'replacing' }
      }
      if (meta.annotations?.[REMEDIATE_MACHINE_ANNOTATION] !== undefined) {
        const detail = `${PROVIDER}: ${who} already carries ${REMEDIATE_MACHINE_ANNOTATION}; MachineHealthCheck replaces it, not annotating again (remediation ${remediationId})`
        finished.remember(nodeName, remediationId, detail)
        return { detail, outcome: 'replacing' }
      }
      if (meta.annotations?.[SKIP_REMEDIATION_ANNOTATION] !== undefined) {
        throw new ProviderError(`${PROVIDER}: refusing to replace ${who}: it carries ${SKIP_REMEDIATION_ANNOTATION}, so MachineHealthCheck would ignore the request`, { retryable: false })
      }
      const owner = controllerOf(meta)
      if (owner === undefined) {
        throw new ProviderError(`${PROVIDER}: refusing to replace ${who}: it has no controller owner (MachineSet, KubeadmControlPlane), so nothing would create a replacement`, { retryable: false })
      }
      const mhc = requireMhc ? await coveringHealthCheck(machine, version, signal) : undefined
      const notes: string[] = []
      if (meta.annotations?.[PAUSED_ANNOTATION] !== undefined) notes.push(`the Machine is paused (${PAUSED_ANNOTATION}); remediation starts once it is unpaused`)
      if (mhc?.metadata?.annotations?.[PAUSED_ANNOTATION] !== undefined) notes.push(`MachineHealthCheck ${ref(mhc.metadata)} is paused; remediation starts once it is unpaused`)

      if (signal.aborted) throw abortedBeforeActing(PROVIDER, `replace of ${who}`, signal)
      const namespace = meta.namespace ?? ''
      const name = meta.name ?? ''
      const op = { verb: 'patch', resource: 'machines', group: GROUP, namespace, name } as const
      try {
        // resourceVersion makes the patch conditional: a Machine that changed (e.g. started deleting) since we looked is looked at again
        const body = { metadata: { resourceVersion: meta.resourceVersion, annotations: { [REMEDIATE_MACHINE_ANNOTATION]: '' } } }
        await call(op, signal, opts => objects.patchNamespacedCustomObject({ group: GROUP, version, namespace, plural: 'machines', name, body, fieldManager: FIELD_MANAGER }, opts),
          { contentType: MERGE_PATCH, raw: true })
      } catch (err) {
        if (isObjectNotFound(err)) return { detail: `${PROVIDER}: ${who} disappeared before it could be annotated; already replaced, nothing to do (remediation ${remediationId})`, outcome: 'not-performed' }
        if (!isConflict(err)) throw classifyKubeError(err, { provider: PROVIDER, ...op }, signal, timeoutMs)
        if (attempt >= 3) throw new ProviderError(`${PROVIDER}: ${who} kept changing under us (${attempt} conflicts); try again`, { retryable: true, cause: err })
        const fresh = await getMachine(version, namespace, name, signal)
        if (fresh === undefined) return { detail: `${PROVIDER}: ${who} disappeared before it could be annotated; already replaced, nothing to do (remediation ${remediationId})`, outcome: 'not-performed' }
        machine = fresh
        continue
      }
      const by = mhc !== undefined ? `MachineHealthCheck ${ref(mhc.metadata)} marks it unhealthy and ` : 'once marked unhealthy, '
      const detail = `${PROVIDER}: annotated ${who} with ${REMEDIATE_MACHINE_ANNOTATION} for remediation ${remediationId}; ` +
        `${by}${owner.kind} ${owner.name} deletes and recreates it` + (notes.length > 0 ? ` (${notes.join('; ')})` : '')
      finished.remember(nodeName, remediationId, detail)
      return { detail, outcome: 'replacing' }
    }
  }

  const remediate = (request: ProviderRequest): Promise<ProviderResult> =>
    replaceOnly(PROVIDER, 'Machine', 'Cluster API has no reboot operation for a Machine (its remediation deletes and recreates it; an infrastructure-specific external remediation can reboot)', request, replace)

  return { name: PROVIDER, remediate }
}
