import { ApiException } from '@kubernetes/client-node'
import { ClusterError, type ClusterErrorKind } from '../cluster.ts'

/**
 * Maps what @kubernetes/client-node throws onto ClusterError kinds. Two shapes arrive: an
 * ApiException (`code`, `body` as the raw JSON Status string, lower-cased `headers`) from the
 * generated API clients, and a plain Error with `statusCode` from `Watch`. Network faults come from
 * undici's fetch as `TypeError: fetch failed` with the system error (ECONNREFUSED…) as its cause.
 */

const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND',
  'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_ABORTED'
])
const NETWORK_MESSAGES = /fetch failed|socket hang up|other side closed|ECONNREFUSED|ECONNRESET|ETIMEDOUT/i

type ErrorShape = { name?: unknown, message?: unknown, code?: unknown, cause?: unknown, errors?: unknown }

/** True for a request that never got an HTTP answer: refused, reset, timed out, aborted. */
export function isNetworkError (err: unknown, depth = 0): boolean {
  if (typeof err !== 'object' || err === null || depth > 4) return false
  const e = err as ErrorShape
  if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return true
  if (e.name === 'AbortError' || e.name === 'TimeoutError') return true
  if (typeof e.message === 'string' && NETWORK_MESSAGES.test(e.message)) return true
  // Happy-eyeballs connects fail with an AggregateError holding one error per address.
  if (Array.isArray(e.errors) && e.errors.some(inner => isNetworkError(inner, depth + 1))) return true
  return isNetworkError(e.cause, depth + 1)
}

/** The HTTP status of a failed request, or undefined when there was no answer. */
export function httpStatusOf (err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code
  const statusCode = (err as { statusCode?: unknown } | null)?.statusCode
  return typeof statusCode === 'number' ? statusCode : undefined
}

type Status = { message?: string, reason?: string, details?: { retryAfterSeconds?: number } }

/** The Status object the API server sent with an error; the client hands it over as a JSON string. */
export function statusOf (err: unknown): Status | undefined {
  if (!(err instanceof ApiException)) return undefined
  const body: unknown = err.body
  if (typeof body === 'object' && body !== null) return body as Status
  if (typeof body !== 'string') return undefined
  try {
    const parsed: unknown = JSON.parse(body)
    return typeof parsed === 'object' && parsed !== null ? parsed as Status : undefined
  } catch {
    return { message: body.slice(0, 500) }
  }
}

/** Retry-After (seconds or an HTTP date) in ms, falling back to the Status's retryAfterSeconds. */
export function retryAfterMsOf (err: unknown, now = Date.now()): number | undefined {
  const header = err instanceof ApiException ? err.headers?.['retry-after'] : undefined
  if (header !== undefined && header.trim() !== '') {
    const seconds = Number(header)
    if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000
    const date = Date.parse(header)
    if (Number.isFinite(date)) return Math.max(0, date - now)
  }
  const seconds = statusOf(err)?.details?.retryAfterSeconds
  return typeof seconds === 'number' && seconds > 0 ? seconds * 1000 : undefined
}

function kindOf (status: number): ClusterErrorKind {
  if (status === 404 || status === 410) return 'not-found'
  if (status === 409) return 'conflict'
  // 408 and 429 (API priority and fairness) and 5xx: the server is there but cannot answer now.
  if (status === 408 || status === 429 || status >= 500) return 'unavailable'
  return 'invalid'
}

/**
 * A ClusterError for a failed call `what` (e.g. "patch node worker-1"). Errors that are neither an
 * HTTP answer nor a network fault are programming errors and come back unchanged.
 */
export function toClusterError (err: unknown, what: string): unknown {
  if (err instanceof ClusterError) return err
  const status = httpStatusOf(err)
  if (status !== undefined) {
    const message = statusOf(err)?.message ?? (err instanceof Error ? err.message.split('\n')[0] : undefined) ?? 'no message'
    return new ClusterError(kindOf(status), `${what}: HTTP ${status}: ${message}`, { cause: err })
  }
  if (isNetworkError(err)) {
    const cause = (err as ErrorShape).cause as ErrorShape | undefined
    const detail = typeof cause?.message === 'string' ? cause.message : String((err as ErrorShape).message ?? err)
    return new ClusterError('unavailable', `${what}: API server unreachable: ${detail}`, { cause: err })
  }
  return err
}
