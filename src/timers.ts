/** Timers that keep the process alive while awaited (AbortSignal.timeout's timer does not). */

export function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) { reject(signal.reason); return }
    const stop = () => { clearTimeout(timer); reject(signal!.reason) }
    const timer = setTimeout(() => { signal?.removeEventListener('abort', stop); resolve() }, ms)
    signal?.addEventListener('abort', stop, { once: true })
  })
}

/** An AbortSignal that fires after `ms` with a TimeoutError; call `clear` once it is no longer needed. */
export function deadlineSignal (ms: number): { signal: AbortSignal, clear: () => void } {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(new DOMException(`deadline of ${ms}ms reached`, 'TimeoutError')), Math.max(0, ms))
  return { signal: controller.signal, clear: () => clearTimeout(timer) }
}
