// What `self-healing-controller status` reads: the answers of GET /v1/nodes, /v1/budget and
// /v1/pause (the shapes the HTTP API serves), and the client that fetches them.
import type { Static } from 'typebox'
import type { BudgetBody, NodeStatusBody, PauseStatusBody } from '../http/schemas.ts'

// The types come from the HTTP API's own schemas (the single source), narrowed to what the
// table reads: a field the API drops or renames is a type error here.

/** One node of GET /v1/nodes. */
export type NodeStatus = Pick<Static<typeof NodeStatusBody>, 'name' | 'pool' | 'zone' | 'unschedulable' | 'phase' | 'since' | 'reason' | 'alert' | 'deferred' | 'outOfService' | 'cooldownUntil' | 'drainDeadline' | 'outcome'>
export interface NodesAnswer { nodes: NodeStatus[] }

/** GET /v1/budget */
export type BudgetAnswer = Pick<Static<typeof BudgetBody>, 'maxConcurrentDrains' | 'ours' | 'pools'>
export type PoolBudget = BudgetAnswer['pools'][number]
export type OutOfServiceCount = PoolBudget['outOfService']

/** GET /v1/pause */
export type PauseAnswer = Static<typeof PauseStatusBody>
export type Pause = PauseAnswer['pauses'][number]
export type WindowsState = PauseAnswer['windows']

/** The three answers together: what `status --json` prints. */
export interface StatusReport {
  nodes: NodeStatus[]
  budget: BudgetAnswer
  pauses: Pause[]
  windows: WindowsState
}

/** The API could not be asked, or did not answer as expected; the message names the URL. */
export class StatusApiError extends Error {
  override name = 'StatusApiError'
}

const timeoutMs = 10_000

async function getJson (url: URL, token: string | undefined): Promise<unknown> {
  let response: Response
  try {
    response = await fetch(url, {
      headers: { accept: 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
      signal: AbortSignal.timeout(timeoutMs)
    })
  } catch (err) {
    const error = err as Error & { cause?: Error }
    const why = error.name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000}s` : (error.cause?.message ?? error.message)
    throw new StatusApiError(`cannot reach ${url.href}: ${why}`)
  }
  const text = await response.text()
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    body = undefined
  }
  if (!response.ok) {
    const message = typeof body === 'object' && body !== null && 'message' in body ? `: ${String(body.message)}` : ''
    const hint = response.status === 401 ? ' (pass the token with --token-file FILE or SHC_TOKEN)' : ''
    throw new StatusApiError(`${url.href} answered ${response.status} ${response.statusText}${message}${hint}`)
  }
  if (body === undefined) throw new StatusApiError(`${url.href} answered ${response.status} but not with JSON`)
  return body
}

/** Throws unless `body` has `key` of that kind (and so is the answer that endpoint is meant to give). */
function expectField (url: URL, body: unknown, key: string, kind: 'list' | 'object'): void {
  const value = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[key] : undefined
  const ok = kind === 'list' ? Array.isArray(value) : typeof value === 'object' && value !== null
  if (!ok) throw new StatusApiError(`${url.href} answered without a "${key}" ${kind}: is this a self-healing-controller?`)
}

/** Fetches the three answers at once from the API at `base` (a URL, optionally with a path prefix). */
export async function fetchStatus (base: URL, token: string | undefined): Promise<StatusReport> {
  const prefix = base.href.endsWith('/') ? base : new URL(`${base.href}/`)
  const urls = { nodes: new URL('v1/nodes', prefix), budget: new URL('v1/budget', prefix), pause: new URL('v1/pause', prefix) }
  const [nodes, budget, pause] = await Promise.all([getJson(urls.nodes, token), getJson(urls.budget, token), getJson(urls.pause, token)])
  expectField(urls.nodes, nodes, 'nodes', 'list')
  expectField(urls.budget, budget, 'pools', 'list')
  expectField(urls.pause, pause, 'pauses', 'list')
  expectField(urls.pause, pause, 'windows', 'object')
  const { pauses, windows } = pause as PauseAnswer
  return { nodes: (nodes as NodesAnswer).nodes, budget: budget as BudgetAnswer, pauses, windows }
}
