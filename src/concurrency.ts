import { sleep } from './timers.ts'

/** Runs `fn` over `items`, at most `limit` at a time; rejects with the first failure after all settled. */
export async function forEachLimited<T> (items: Iterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items]
  let next = 0
  let failure: { err: unknown } | undefined
  const worker = async () => {
    while (next < queue.length) {
      const item = queue[next++]!
      try {
        await fn(item)
      } catch (err) {
        failure ??= { err }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, queue.length) }, worker))
  if (failure !== undefined) throw failure.err
}

/**
 * A client-side rate limit on API writes (a token bucket): a storm is absorbed in seconds without
 * flooding the API server, and API priority and fairness never has to push back on us.
 */
export function createRateLimiter (perSecond: number, burst: number, now: () => number = Date.now) {
  let tokens = burst
  let last = now()
  let chain: Promise<void> = Promise.resolve()
  const take = async () => {
    for (;;) {
      const at = now()
      tokens = Math.min(burst, tokens + (at - last) * perSecond / 1000)
      last = at
      if (tokens >= 1) { tokens -= 1; return }
      await sleep(Math.ceil((1 - tokens) * 1000 / perSecond))
    }
  }
  return {
    /** Resolves when one more write may go out; callers queue in order. */
    acquire (): Promise<void> {
      const turn = chain.then(take)
      chain = turn.catch(() => {})
      return turn
    }
  }
}
