// What `self-healing-controller status` reads: the answers of GET /v1/nodes, /v1/budget and
// /v1/pause (the shapes the HTTP API serves), and the client that fetches them.

/** GET /v1/nodes → { nodes: NodeStatus[] } */
export interface NodeStatus {
  name: string
  pool: string
  zone: string
  unschedulable: boolean
  /** pending, cordoned, draining, remediating, rebooting, replacing, verifying, cooldown, healthy, failed, quarantined, cancelled */
  phase: string
  /** ISO time the node entered its phase; null when never tracked. */
  since: string | null
  reason: string
  alert: { alertname: string, status: string, [field: string]: unknown } | null
  /** Why a pending node does not start: the rule holding it (budget, window, paused, …) and its reason. */
  deferred: { rule: string, reason: string, scope?: string } | null
  outOfService: { cause: string, by: 'us' | 'others' } | null
  cooldownUntil: string | null
  drainDeadline: string | null
  outcome: string | null
}

export interface NodesAnswer { nodes: NodeStatus[] }

export interface OutOfServiceCount {
  ours: number
  others: number
  /** Out-of-service nodes by cause, ours and others'. */
  causes: Record<string, number>
}

export interface ZoneBudget { zone: string, size: number, budget: number, outOfService: OutOfServiceCount }

export interface PoolBudget {
  pool: string
  size: number
  /** How many of the pool's nodes may be out of service at once. */
  budget: number
  outOfService: OutOfServiceCount
  breaker: { open: boolean, since?: string }
  zones: ZoneBudget[]
}

/** GET /v1/budget */
export interface BudgetAnswer {
  maxConcurrentDrains: number
  /** Nodes out of service through us, cluster-wide. */
  ours: number
  pools: PoolBudget[]
}

export interface Pause {
  scope: 'cluster' | 'pool'
  /** Set when scope is pool. */
  pool?: string
  reason: string
  by: string
  /** ISO time the pause was set. */
  at: string
  /** ISO time the pause ends by itself; absent: until lifted. */
  until?: string
}

export interface WindowsState {
  /** Normalised REMEDIATION_WINDOWS; "" = always open. */
  spec: string
  open: boolean
  /** ISO time of the next opening; null when open now. */
  nextOpening: string | null
}

/** GET /v1/pause */
export interface PauseAnswer { pauses: Pause[], windows: WindowsState }

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
