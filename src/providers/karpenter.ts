import { CustomObjectsApi } from '@kubernetes/client-node'
import type { ConfigurationOptions, KubeConfig, V1Node } from '@kubernetes/client-node'
import { ProviderError } from './provider.ts'
import type { Provider, ProviderRequest, ProviderResult } from './provider.ts'
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
  requestSignal
} from './kube-calls.ts'
import type { KubeMeta, KubeOperation } from './kube-calls.ts'

const GROUP = 'karpenter.sh'
const VERSION = 'v1'
const PLURAL = 'nodeclaims'
const PROVIDER = 'karpenter'

/** Label Karpenter copies from the NodeClaim onto its Node: the NodePool that launched it. */
export const NODEPOOL_LABEL = 'karpenter.sh/nodepool'

export type KarpenterProviderOptions = {
  /** Kubeconfig of the cluster Karpenter runs in (NodeClaims live next to the Nodes). */
  kubeConfig: KubeConfig
  /** Bound on each HTTP request; default 30 s. The remediation's signal still cuts it shorter. */
  requestTimeoutMs?: number
}

type NodeClaim = {
  metadata?: KubeMeta
  status?: { nodeName?: string, providerID?: string }
}

/**
 * Karpenter provider: `replace` deletes the node's NodeClaim (karpenter.sh/v1). Karpenter's termination
 * finalizer then cordons and drains the node and terminates the instance; the NodePool launches a
 * replacement if pods need one. This runs only after our own drain through the Eviction API (PDBs
 * respected) has emptied the node, so Karpenter's drain, which can force its way past PDBs once a
 * terminationGracePeriod expires, finds nothing left to disrupt but DaemonSet and excluded pods.
 *
 * - Finds the NodeClaim from the node's ownerReference (kind NodeClaim, which Karpenter sets when the
 *   node registers), else by a NodeClaim whose `status.nodeName` is the node or `status.providerID` the node's.
 * - The delete carries a UID precondition, so it can only ever delete that NodeClaim.
 * - Idempotent: a NodeClaim already deleting (deletionTimestamp set, finalizers pending) or gone counts as done, with no second delete.
 * - `reboot` is refused: Karpenter has no reboot, only terminate-and-replace.
 * - `none` makes no API call.
 */
export function createKarpenterProvider (options: KarpenterProviderOptions): Provider {
  const objects = options.kubeConfig.makeApiClient(CustomObjectsApi)
  const timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
  const finished = new FinishedRemediations()

  async function call<T> (op: Omit<KubeOperation, 'provider'>, signal: AbortSignal, fn: (opts: ConfigurationOptions) => Promise<T>, raw = false): Promise<T> {
    try {
      return await fn(kubeCallOptions(requestSignal(signal, timeoutMs)))
    } catch (err) {
      if (raw && (isObjectNotFound(err) || isConflict(err))) throw err
      throw classifyKubeError(err, { provider: PROVIDER, ...op }, signal, timeoutMs)
    }
  }

  async function getNodeClaim (name: string, signal: AbortSignal): Promise<NodeClaim | undefined> {
    try {
      return await call({ verb: 'get', resource: PLURAL, group: GROUP, name }, signal,
        opts => objects.getClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, name }, opts), true) as NodeClaim
    } catch (err) {
      if (isObjectNotFound(err)) return undefined
      throw classifyKubeError(err, { provider: PROVIDER, verb: 'get', resource: PLURAL, group: GROUP, name }, signal, timeoutMs)
    }
  }

  type Found = { claim: NodeClaim, how: string } | { gone: string } | { missing: string }

  async function findNodeClaim (node: V1Node, signal: AbortSignal): Promise<Found> {
    const nodeName = node.metadata?.name ?? ''
    const providerID = node.spec?.providerID ?? ''
    const owner = node.metadata?.ownerReferences?.find(o => o.kind === 'NodeClaim' && o.apiVersion.startsWith(`${GROUP}/`))
    if (owner !== undefined) {
      const claim = await getNodeClaim(owner.name, signal)
      if (claim === undefined) return { gone: `NodeClaim ${owner.name}, the node's owner, no longer exists` }
      // same name but another UID: the owner was deleted and the name reused
      if (claim.metadata?.uid === owner.uid) return { claim, how: 'the node\'s owner' }
      return { gone: `NodeClaim ${owner.name} (uid ${owner.uid}), the node's owner, no longer exists (a newer NodeClaim has its name)` }
    }
    const claims = await listAllPages<NodeClaim>(cont => call({ verb: 'list', resource: PLURAL, group: GROUP }, signal,
      opts => objects.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, limit: 500, _continue: cont }, opts)))
    const matches = claims.filter(c => c.status?.nodeName === nodeName || (providerID !== '' && c.status?.providerID === providerID))
    const best = matches.length > 1 ? matches.filter(c => providerID !== '' && c.status?.providerID === providerID) : matches
    if (best.length === 1 && best[0] !== undefined) return { claim: best[0], how: 'found by status.nodeName / status.providerID' }
    if (matches.length > 1) {
      throw new ProviderError(`${PROVIDER}: node ${nodeName} matches several NodeClaims (${matches.map(c => c.metadata?.name ?? '?').join(', ')}); refusing to guess which one to delete`, { retryable: false })
    }
    const pool = node.metadata?.labels?.[NODEPOOL_LABEL]
    return {
      missing: `no NodeClaim found for node ${nodeName}: it has no NodeClaim ownerReference and no NodeClaim has status.nodeName=${nodeName}` +
        (providerID !== '' ? ` or status.providerID=${providerID}` : '') +
        (pool === undefined ? ` (and it has no ${NODEPOOL_LABEL} label: is it a Karpenter node at all?)` : ` (its ${NODEPOOL_LABEL} label says NodePool ${pool})`)
    }
  }

  async function replace (request: ProviderRequest, nodeName: string): Promise<ProviderResult> {
    const { signal, remediationId } = request
    const found = await findNodeClaim(request.node, signal)
    if ('gone' in found) return { detail: `${PROVIDER}: ${found.gone}; the instance behind node ${nodeName} is already being replaced, nothing to do (remediation ${remediationId})`, outcome: 'not-performed' }
    if ('missing' in found) {
      const earlier = finished.get(nodeName, remediationId)
      if (earlier !== undefined) return { detail: `${PROVIDER}: the NodeClaim of node ${nodeName} is gone since this remediation deleted it; nothing more to do (earlier: ${earlier})`, outcome: 'replacing' }
      throw new ProviderError(`${PROVIDER}: ${found.missing}`, { retryable: false })
    }
    const meta = found.claim.metadata ?? {}
    const name = meta.name ?? ''
    const pool = meta.labels?.[NODEPOOL_LABEL]
    const who = `NodeClaim ${name} (node ${nodeName}${pool !== undefined ? `, NodePool ${pool}` : ''}, ${found.how})`
    if (meta.deletionTimestamp !== undefined) {
      const pending = (meta.finalizers ?? []).length > 0 ? `; finalizers ${(meta.finalizers ?? []).join(', ')} pending` : ''
      const detail = `${PROVIDER}: ${who} is already being deleted (since ${meta.deletionTimestamp}${pending}); Karpenter terminates the instance, not deleting again (remediation ${remediationId})`
      finished.remember(nodeName, remediationId, detail)
      return { detail, outcome: 'replacing' }
    }
    if (signal.aborted) throw abortedBeforeActing(PROVIDER, `replace of ${who}`, signal)
    const op = { verb: 'delete', resource: PLURAL, group: GROUP, name } as const
    try {
      await call(op, signal, opts => objects.deleteClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        name,
        body: { apiVersion: 'v1', kind: 'DeleteOptions', ...(meta.uid !== undefined ? { preconditions: { uid: meta.uid } } : {}) }
      }, opts), true)
    } catch (err) {
      // 404: gone meanwhile; 409: the UID precondition failed, so the NodeClaim we found is gone and another has its name
      if (isObjectNotFound(err) || isConflict(err)) {
        return { detail: `${PROVIDER}: ${who} went away before we could delete it; already being replaced, nothing to do (remediation ${remediationId})`, outcome: 'not-performed' }
      }
      throw classifyKubeError(err, { provider: PROVIDER, ...op }, signal, timeoutMs)
    }
    const detail = `${PROVIDER}: deleted ${who} for remediation ${remediationId}; Karpenter's termination finalizer drains what our drain left ` +
      'and terminates the instance, and its NodePool launches a replacement if pods need one'
    finished.remember(nodeName, remediationId, detail)
    return { detail, outcome: 'replacing' }
  }

  const remediate = (request: ProviderRequest): Promise<ProviderResult> =>
    replaceOnly(PROVIDER, 'NodeClaim', 'Karpenter has no reboot operation (a NodeClaim can only be deleted, which terminates and replaces the instance)', request, replace)

  return { name: PROVIDER, remediate }
}
