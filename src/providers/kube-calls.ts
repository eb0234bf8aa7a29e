import { ApiException, Observable } from '@kubernetes/client-node'
import type { ConfigurationOptions } from '@kubernetes/client-node'
import { statusOf } from '../kube/errors.ts'
import { ProviderError, type ProviderRequest, type ProviderResult } from './provider.ts'

/** Calls to custom resources through client-node, shared by the clusterapi and karpenter providers. */
/** One Kubernetes API call, described well enough to name the RBAC rule it needs. */
export type KubeOperation = {
  provider: string
  verb: 'get' | 'list' | 'patch' | 'delete'
  resource: string
  group: string
  /** Absent for cluster-scoped resources and cluster-wide lists. */
  namespace?: string
  name?: string
}

/** The minimal object metadata the providers read; timestamps stay strings (custom objects are raw JSON). */
export type KubeMeta = {
  name?: string
  namespace?: string
  uid?: string
  resourceVersion?: string
  deletionTimestamp?: string
  finalizers?: string[]
  labels?: Record<string, string>
  annotations?: Record<string, string>
  ownerReferences?: Array<{ apiVersion?: string, kind?: string, name?: string, uid?: string, controller?: boolean }>
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000

const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED'])

function target (op: KubeOperation): string {
  const where = op.namespace !== undefined ? `${op.namespace}/` : ''
  return `${op.resource}.${op.group}${op.name !== undefined ? ` ${where}${op.name}` : op.namespace !== undefined ? ` in namespace ${op.namespace}` : ''}`
}

/** The signal for one HTTP request: the caller's signal, or our per-request timeout. */
export function requestSignal (caller: AbortSignal, timeoutMs: number): AbortSignal {
  return AbortSignal.any([caller, AbortSignal.timeout(timeoutMs)])
}

/**
 * Per-call client-node options: hands `signal` to fetch (client-node has no other way in) and, for
 * patches, picks the content type (client-node would otherwise send a JSON patch).
 */
export function kubeCallOptions (signal: AbortSignal, contentType?: string): ConfigurationOptions {
  return {
    middleware: [{
      pre (context) {
        context.setSignal(signal)
        if (contentType !== undefined) context.setHeaderParam('Content-Type', contentType)
        return new Observable(Promise.resolve(context))
      },
      post (response) {
        return new Observable(Promise.resolve(response))
      }
    }],
    // keep the KubeConfig's own middleware; ours only adds to it
    middlewareMergeStrategy: 'append'
  }
}

/** The object itself does not exist (as opposed to the resource type not being served: "404 page not found"). */
export function isObjectNotFound (err: unknown): boolean {
  return err instanceof ApiException && err.code === 404 && statusOf(err)?.reason === 'NotFound'
}

export function isConflict (err: unknown): boolean {
  return err instanceof ApiException && err.code === 409
}

function messageOf (err: unknown): string {
  if (err instanceof ApiException) {
    const status = statusOf(err)
    if (status?.message !== undefined) return status.message
    const body: unknown = err.body
    return typeof body === 'string' ? body.trim().slice(0, 200) : `HTTP ${err.code}`
  }
  return err instanceof Error ? err.message : String(err)
}

function networkCode (err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; typeof e === 'object' && e !== null && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return code
  }
  return undefined
}

function abortText (signal: AbortSignal): string {
  const reason: unknown = signal.reason
  if (reason instanceof Error) return reason.message
  return reason === undefined ? 'aborted' : String(reason)
}

/** A ProviderError for a remediation whose signal aborted before anything was written. */
export function abortedBeforeActing (provider: string, what: string, signal: AbortSignal): ProviderError {
  return new ProviderError(`${provider}: ${what} aborted before acting: ${abortText(signal)}`, { retryable: false, cause: signal.reason })
}

/**
 * Maps a failed client-node call to a ProviderError. Throttling (429), server errors (5xx), our own
 * per-request timeout and network failures are retryable; a 403 names the RBAC rule that is missing;
 * an abort of the caller's signal and every other answer are not retryable.
 */
export function classifyKubeError (err: unknown, op: KubeOperation, caller: AbortSignal, timeoutMs: number = DEFAULT_REQUEST_TIMEOUT_MS): ProviderError {
  if (err instanceof ProviderError) return err
  const p = op.provider
  const what = `${op.verb} ${target(op)}`
  if (caller.aborted) {
    return new ProviderError(`${p}: ${what} aborted: ${abortText(caller)}`, { retryable: false, cause: err })
  }
  if (err instanceof Error && err.name === 'TimeoutError') {
    return new ProviderError(`${p}: ${what} got no answer within ${timeoutMs}ms`, { retryable: true, cause: err })
  }
  if (err instanceof ApiException) {
    const code = err.code
    const message = messageOf(err)
    if (code === 429) {
      const retryAfter = err.headers?.['retry-after']
      return new ProviderError(`${p}: ${what} throttled (HTTP 429${retryAfter !== undefined ? `, Retry-After ${retryAfter}s` : ''}): ${message}`, { retryable: true, cause: err })
    }
    if (code >= 500) {
      return new ProviderError(`${p}: ${what} failed with a server error (HTTP ${code}): ${message}`, { retryable: true, cause: err })
    }
    if (code === 403) {
      const scope = op.namespace !== undefined ? `in namespace ${op.namespace}` : 'cluster-wide'
      return new ProviderError(
        `${p}: forbidden to ${what}: missing RBAC permission: verb "${op.verb}" on resource "${op.resource}" in API group "${op.group}" (${scope}); ` +
          `grant it with the ClusterRole in deploy/components/${p} (HTTP 403: ${message})`,
        { retryable: false, cause: err }
      )
    }
    if (code === 401) {
      return new ProviderError(`${p}: ${what} was refused as unauthenticated (HTTP 401): the credentials in the kubeconfig are not accepted: ${message}`, { retryable: false, cause: err })
    }
    if (code === 404 && statusOf(err)?.reason === undefined) {
      return new ProviderError(`${p}: ${what} failed: the API server does not serve ${op.resource}.${op.group} (HTTP 404: ${message}); is its CRD installed in this cluster?`, { retryable: false, cause: err })
    }
    if (code === 408) {
      return new ProviderError(`${p}: ${what} timed out on the server (HTTP 408): ${message}`, { retryable: true, cause: err })
    }
    return new ProviderError(`${p}: ${what} failed (HTTP ${code}): ${message}`, { retryable: false, cause: err })
  }
  const network = networkCode(err)
  if (network !== undefined || (err instanceof TypeError && /fetch failed/i.test(err.message))) {
    return new ProviderError(`${p}: ${what} failed to reach the API server${network !== undefined ? ` (${network})` : ''}: ${messageOf(err)}`, { retryable: true, cause: err })
  }
  return new ProviderError(`${p}: ${what} failed: ${messageOf(err)}`, { retryable: false, cause: err })
}

/** Collects every page of a list call (limit/continue), so one huge list never has to fit in one answer. */
export async function listAllPages<T> (page: (cont: string | undefined) => Promise<{ items?: T[], metadata?: { continue?: string } }>): Promise<T[]> {
  const items: T[] = []
  let cont: string | undefined
  for (let pages = 0; pages < 1000; pages++) {
    const out = await page(cont)
    items.push(...(out.items ?? []))
    cont = out.metadata?.continue
    if (cont === undefined || cont === '') return items
  }
  return items
}

/** Remembers remediations this process finished, so a repeat can say "done" even once the owner object is gone. */
export class FinishedRemediations {
  readonly #done = new Map<string, string>()
  remember (node: string, remediationId: string, detail: string): void {
    this.#done.set(`${node} ${remediationId}`, detail)
    if (this.#done.size > 10_000) {
      const oldest = this.#done.keys().next()
      if (oldest.done !== true) this.#done.delete(oldest.value)
    }
  }
  get (node: string, remediationId: string): string | undefined {
    return this.#done.get(`${node} ${remediationId}`)
  }
}


/**
 * A provider that can only replace a machine (by acting on the object that owns the node):
 * `none` leaves it alone, `reboot` is refused with why, `replace` goes to `replace` with the node's name.
 */
export async function replaceOnly (
  provider: string,
  owner: string,
  noReboot: string,
  request: ProviderRequest,
  replace: (request: ProviderRequest, nodeName: string) => Promise<ProviderResult>
): Promise<ProviderResult> {
  const nodeName = request.node.metadata?.name
  const label = nodeName ?? '(unnamed)'
  if (request.signal.aborted) throw abortedBeforeActing(provider, `${request.action} of node ${label}`, request.signal)
  if (request.action === 'none') return { detail: `${provider}: action 'none' for node ${label}; its ${owner} was left alone (remediation ${request.remediationId})`, outcome: 'not-performed' }
  if (request.action === 'reboot') throw new ProviderError(`${provider}: cannot reboot node ${label}: ${noReboot}; ask for action 'replace' instead`, { retryable: false })
  if (request.action !== 'replace') throw new ProviderError(`${provider}: unknown action ${JSON.stringify(request.action)}`, { retryable: false })
  if (nodeName === undefined || nodeName === '') throw new ProviderError(`${provider}: the node has no name; cannot find its ${owner}`, { retryable: false })
  return await replace(request, nodeName)
}
