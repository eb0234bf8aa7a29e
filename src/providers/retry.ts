import { sleep as defaultSleep } from '../timers.ts'
import { ProviderError } from './provider.ts'
import type { Provider, ProviderRequest, ProviderResult } from './provider.ts'

export type RetryOptions = {
  /** Total budget for one remediate() call, all attempts and waits included. */
  deadlineMs: number
  /** Wait before the second attempt; doubles after every further retryable failure. */
  initialDelayMs: number
  /** Upper bound for one wait. */
  maxDelayMs: number
  /** Waits `ms`, rejecting early when `signal` aborts. Injectable for tests. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>
  /** Clock in milliseconds used for the deadline arithmetic. Injectable for tests (pair it with `sleep`). */
  now?: () => number
}

export type RetryStopReason = 'non-retryable' | 'deadline' | 'aborted'

/** Thrown by a provider wrapped with {@link withRetries} once it stops trying. */
export class RetriesExhaustedError extends ProviderError {
  readonly attempts: number
  readonly reason: RetryStopReason
  constructor (message: string, options: { retryable: boolean, cause?: unknown, attempts: number, reason: RetryStopReason }) {
    super(message, { retryable: options.retryable, cause: options.cause })
    this.name = 'RetriesExhaustedError'
    this.attempts = options.attempts
    this.reason = options.reason
  }
}

/** The wait before attempt `attempt + 1` (attempt counts from 1): initial * 2^(attempt-1), capped. No jitter. */
export function backoffDelay (attempt: number, initialDelayMs: number, maxDelayMs: number): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30)
  return Math.min(maxDelayMs, initialDelayMs * 2 ** exponent)
}

function abortReason (signal: AbortSignal): string {
  const reason: unknown = signal.reason
  if (reason instanceof Error) return reason.message
  if (reason === undefined) return 'aborted'
  return String(reason)
}

function describe (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function validate (options: RetryOptions): void {
  for (const key of ['deadlineMs', 'initialDelayMs', 'maxDelayMs'] as const) {
    const value = options[key]
    if (!Number.isFinite(value) || value < 0) throw new TypeError(`withRetries: ${key} must be a finite number >= 0, got ${value}`)
  }
}

/**
 * Wraps a provider so that retryable ProviderErrors (throttling, 5xx) are retried with deterministic
 * exponential backoff until `deadlineMs` has passed or the caller's signal aborts.
 *
 * - Only `ProviderError` with `retryable === true` is retried; anything else stops at once.
 * - Each attempt gets a signal that aborts on the caller's signal or at the deadline, so an attempt
 *   hanging in the network is cut off at the deadline too.
 * - A retry is not started if its wait would end at or after the deadline.
 * - The final error is a {@link RetriesExhaustedError} whose message says how many attempts were made
 *   and why it stopped; `cause` is the last error, `retryable` is the last error's flag (false on abort).
 * - On success after more than one attempt, the detail notes the number of attempts.
 */
export function withRetries (provider: Provider, options: RetryOptions): Provider {
  validate(options)
  const sleep = options.sleep ?? defaultSleep
  const now = options.now ?? Date.now

  async function remediate (request: ProviderRequest): Promise<ProviderResult> {
    const label = `${provider.name}: ${request.action} of node ${request.node.metadata?.name ?? '(unnamed)'}`
    const started = now()
    const deadline = started + options.deadlineMs
    const deadlineController = new AbortController()
    const timer = setTimeout(() => {
      deadlineController.abort(new Error(`deadline of ${options.deadlineMs}ms passed`))
    }, options.deadlineMs)
    const signal = AbortSignal.any([request.signal, deadlineController.signal])

    const stop = (attempts: number, reason: RetryStopReason, why: string, cause: unknown, retryable: boolean): RetriesExhaustedError => {
      const elapsed = now() - started
      const plural = attempts === 1 ? 'attempt' : 'attempts'
      return new RetriesExhaustedError(
        `${label} failed after ${attempts} ${plural} in ${elapsed}ms: ${why}`,
        { retryable, cause, attempts, reason }
      )
    }

    let attempts = 0
    let lastErr: unknown
    const last = (): string => attempts === 0 ? '' : `; last error: ${describe(lastErr)}`
    try {
      for (;;) {
        // checked before every attempt, including the first: an already-aborted call never reaches the provider
        if (request.signal.aborted) {
          throw stop(attempts, 'aborted', `caller aborted (${abortReason(request.signal)})${last()}`, lastErr ?? request.signal.reason, false)
        }
        if (deadlineController.signal.aborted || (attempts > 0 && now() >= deadline)) {
          throw stop(attempts, 'deadline', `deadline of ${options.deadlineMs}ms reached${last()}`, lastErr, lastErr instanceof ProviderError && lastErr.retryable)
        }
        attempts++
        try {
          const result = await provider.remediate({ ...request, signal })
          return attempts === 1 ? result : { ...result, detail: `${result.detail} (after ${attempts} attempts)` }
        } catch (e) {
          // an attempt cut off by our own abort says less than the failure that led to it
          const cutOff = request.signal.aborted || deadlineController.signal.aborted
          if (!cutOff || attempts === 1) lastErr = e
          if (cutOff) continue
        }
        if (!(lastErr instanceof ProviderError) || !lastErr.retryable) {
          throw stop(attempts, 'non-retryable', `non-retryable error: ${describe(lastErr)}`, lastErr, false)
        }
        const delay = backoffDelay(attempts, options.initialDelayMs, options.maxDelayMs)
        if (now() + delay >= deadline) {
          throw stop(attempts, 'deadline', `the next retry (in ${delay}ms) would start after the deadline of ${options.deadlineMs}ms${last()}`, lastErr, true)
        }
        try {
          await sleep(delay, signal)
        } catch {
          // woken by an abort; the top of the loop reports which one
        }
      }
    } finally {
      clearTimeout(timer)
    }
  }

  return { name: provider.name, remediate }
}
