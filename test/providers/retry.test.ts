import t from 'tap'
import type { V1Node } from '@kubernetes/client-node'
import { ProviderError } from '../../src/providers/provider.ts'
import type { Provider, ProviderRequest, ProviderResult } from '../../src/providers/provider.ts'
import { backoffDelay, RetriesExhaustedError, withRetries } from '../../src/providers/retry.ts'

const node: V1Node = { metadata: { name: 'node-a' }, spec: { providerID: 'test:///a' } }
const request = (signal: AbortSignal = new AbortController().signal): ProviderRequest =>
  ({ node, action: 'reboot', remediationId: 'r-1', signal })

/** A provider that plays a script: each entry is an error to throw or a detail to return. */
function scripted (script: Array<Error | string>): Provider & { calls: number, signals: AbortSignal[] } {
  const p = {
    name: 'scripted',
    calls: 0,
    signals: [] as AbortSignal[],
    async remediate (req: ProviderRequest): Promise<ProviderResult> {
      p.calls++
      p.signals.push(req.signal)
      const step = script[Math.min(p.calls - 1, script.length - 1)]
      if (step instanceof Error) throw step
      return { detail: step ?? 'done', outcome: 'restarted' }
    }
  }
  return p
}

/** A fake clock: sleep advances it instantly and records the waits. */
function fakeClock () {
  let now = 1_000_000
  const waits: number[] = []
  return {
    waits,
    now: () => now,
    sleep: async (ms: number) => { waits.push(ms); now += ms },
    advance: (ms: number) => { now += ms }
  }
}

const throttled = (): ProviderError => new ProviderError('throttled: RequestLimitExceeded', { retryable: true })

t.test('backoffDelay doubles from the initial delay and is capped', async t => {
  t.same([1, 2, 3, 4, 5, 6, 7].map(n => backoffDelay(n, 100, 1000)), [100, 200, 400, 800, 1000, 1000, 1000])
  t.equal(backoffDelay(200, 100, 5000), 5000, 'large attempt numbers do not overflow')
})

t.test('retries retryable errors with deterministic exponential backoff, then succeeds', async t => {
  const clock = fakeClock()
  const inner = scripted([throttled(), throttled(), throttled(), throttled(), 'rebooted it'])
  const p = withRetries(inner, { deadlineMs: 60_000, initialDelayMs: 100, maxDelayMs: 500, sleep: clock.sleep, now: clock.now })
  const result = await p.remediate(request())
  t.equal(inner.calls, 5)
  t.same(clock.waits, [100, 200, 400, 500], 'waits double and are capped at maxDelayMs')
  t.match(result.detail, /^rebooted it \(after 5 attempts\)$/)
  t.equal(p.name, 'scripted', 'keeps the provider name')

  // the same script again gives the same waits: no randomness
  const clock2 = fakeClock()
  await withRetries(scripted([throttled(), throttled(), throttled(), throttled(), 'x']), { deadlineMs: 60_000, initialDelayMs: 100, maxDelayMs: 500, sleep: clock2.sleep, now: clock2.now }).remediate(request())
  t.same(clock2.waits, clock.waits, 'deterministic')
})

t.test('first-try success passes the result through untouched', async t => {
  const result = await withRetries(scripted(['plain']), { deadlineMs: 1000, initialDelayMs: 10, maxDelayMs: 10 }).remediate(request())
  t.same(result, { detail: 'plain', outcome: 'restarted' })
})

t.test('does not retry a non-retryable ProviderError', async t => {
  const clock = fakeClock()
  const inner = scripted([new ProviderError('bad providerID', { retryable: false }), 'never'])
  const err = await withRetries(inner, { deadlineMs: 60_000, initialDelayMs: 100, maxDelayMs: 500, sleep: clock.sleep, now: clock.now })
    .remediate(request()).then(() => undefined, (e: unknown) => e)
  t.equal(inner.calls, 1)
  t.ok(err instanceof RetriesExhaustedError)
  t.ok(err instanceof ProviderError, 'still a ProviderError')
  if (err instanceof RetriesExhaustedError) {
    t.equal(err.reason, 'non-retryable')
    t.equal(err.attempts, 1)
    t.equal(err.retryable, false)
    t.match(err.message, /failed after 1 attempt in \d+ms: non-retryable error: bad providerID/)
    t.type(err.cause, ProviderError)
  }
})

t.test('does not retry errors that are not ProviderErrors', async t => {
  const inner = scripted([new TypeError('boom'), 'never'])
  const err = await withRetries(inner, { deadlineMs: 60_000, initialDelayMs: 1, maxDelayMs: 1 })
    .remediate(request()).then(() => undefined, (e: unknown) => e)
  t.equal(inner.calls, 1)
  t.ok(err instanceof RetriesExhaustedError)
  t.match(String(err), /non-retryable error: boom/)
})

t.test('gives up when the next wait would pass the deadline, and says why', async t => {
  const clock = fakeClock()
  const inner = scripted([throttled()])
  const err = await withRetries(inner, { deadlineMs: 1000, initialDelayMs: 100, maxDelayMs: 10_000, sleep: clock.sleep, now: clock.now })
    .remediate(request()).then(() => undefined, (e: unknown) => e)
  // attempts at t=0, 100, 300, 700; the next wait (800) would end at 1500 > 1000
  t.equal(inner.calls, 4)
  t.same(clock.waits, [100, 200, 400])
  t.ok(err instanceof RetriesExhaustedError)
  if (err instanceof RetriesExhaustedError) {
    t.equal(err.reason, 'deadline')
    t.equal(err.attempts, 4)
    t.equal(err.retryable, true, 'keeps the last error\'s retryable flag')
    t.match(err.message, /scripted: reboot of node node-a failed after 4 attempts in 700ms: the next retry \(in 800ms\) would start after the deadline of 1000ms; last error: throttled: RequestLimitExceeded/)
  }
})

t.test('counts time spent inside attempts against the deadline', async t => {
  const clock = fakeClock()
  const slow: Provider = {
    name: 'slow',
    async remediate () {
      clock.advance(400)
      throw throttled()
    }
  }
  const err = await withRetries(slow, { deadlineMs: 1000, initialDelayMs: 50, maxDelayMs: 50, sleep: clock.sleep, now: clock.now })
    .remediate(request()).then(() => undefined, (e: unknown) => e)
  // 0-400 attempt 1, wait 50, 450-850 attempt 2, wait 50, 900-1300 attempt 3 → deadline reached
  t.ok(err instanceof RetriesExhaustedError)
  if (err instanceof RetriesExhaustedError) {
    t.equal(err.attempts, 3)
    t.equal(err.reason, 'deadline')
    t.match(err.message, /failed after 3 attempts in 1300ms: the next retry \(in 50ms\) would start after the deadline of 1000ms; last error: throttled/)
  }
})

t.test('an already-aborted caller signal never reaches the provider', async t => {
  const inner = scripted(['never'])
  const controller = new AbortController()
  controller.abort(new Error('shutting down'))
  const err = await withRetries(inner, { deadlineMs: 1000, initialDelayMs: 1, maxDelayMs: 1 })
    .remediate(request(controller.signal)).then(() => undefined, (e: unknown) => e)
  t.equal(inner.calls, 0)
  t.ok(err instanceof RetriesExhaustedError)
  if (err instanceof RetriesExhaustedError) {
    t.equal(err.reason, 'aborted')
    t.equal(err.retryable, false)
    t.match(err.message, /after 0 attempts .*caller aborted \(shutting down\)/)
  }
})

t.test('an abort during the backoff wait stops at once (real timers)', async t => {
  const inner = scripted([throttled()])
  const controller = new AbortController()
  const started = performance.now()
  setTimeout(() => controller.abort(new Error('deadline of the remediation')), 50)
  const err = await withRetries(inner, { deadlineMs: 60_000, initialDelayMs: 10_000, maxDelayMs: 10_000 })
    .remediate(request(controller.signal)).then(() => undefined, (e: unknown) => e)
  const elapsed = performance.now() - started
  t.ok(elapsed < 2000, `stopped promptly (${Math.round(elapsed)}ms), not after the 10 s wait`)
  t.equal(inner.calls, 1)
  t.ok(err instanceof RetriesExhaustedError)
  if (err instanceof RetriesExhaustedError) {
    t.equal(err.reason, 'aborted')
    t.match(err.message, /failed after 1 attempt .*caller aborted \(deadline of the remediation\); last error: throttled/)
  }
})

t.test('the attempt signal aborts at the deadline, cutting off a hanging attempt (real timers)', async t => {
  let sawAbort = false
  const hanging: Provider = {
    name: 'hanging',
    remediate (req) {
      return new Promise((_resolve, reject) => {
        req.signal.addEventListener('abort', () => {
          sawAbort = true
          reject(new ProviderError('aborted in flight', { retryable: false, cause: req.signal.reason }))
        }, { once: true })
      })
    }
  }
  const started = performance.now()
  const err = await withRetries(hanging, { deadlineMs: 200, initialDelayMs: 10, maxDelayMs: 10 })
    .remediate(request()).then(() => undefined, (e: unknown) => e)
  const elapsed = performance.now() - started
  t.ok(sawAbort, 'the provider saw its signal abort')
  t.ok(elapsed >= 150 && elapsed < 2000, `gave up around the deadline (${Math.round(elapsed)}ms)`)
  t.ok(err instanceof RetriesExhaustedError)
  if (err instanceof RetriesExhaustedError) {
    t.equal(err.reason, 'deadline')
    t.equal(err.attempts, 1)
    t.match(err.message, /deadline of 200ms reached; last error: aborted in flight/)
  }
})

t.test('the provider receives a signal that follows the caller signal', async t => {
  const inner = scripted(['ok'])
  const controller = new AbortController()
  await withRetries(inner, { deadlineMs: 1000, initialDelayMs: 1, maxDelayMs: 1 }).remediate(request(controller.signal))
  const seen = inner.signals[0]
  t.ok(seen !== undefined && seen !== controller.signal, 'a derived signal')
  controller.abort()
  t.equal(seen?.aborted, true, 'aborts with the caller signal')
})

t.test('rejects nonsense options', async t => {
  t.throws(() => withRetries(scripted(['x']), { deadlineMs: -1, initialDelayMs: 1, maxDelayMs: 1 }), TypeError)
  t.throws(() => withRetries(scripted(['x']), { deadlineMs: 1, initialDelayMs: Number.NaN, maxDelayMs: 1 }), TypeError)
})

t.test('a success after retries keeps what the provider said became of the machine', async t => {
  const clock = fakeClock()
  const result = await withRetries(scripted([throttled(), 'rebooted']), { deadlineMs: 10_000, initialDelayMs: 10, maxDelayMs: 10, sleep: clock.sleep, now: clock.now }).remediate(request())
  t.same(result, { detail: 'rebooted (after 2 attempts)', outcome: 'restarted' }, 'the outcome survives the retry wrapper')
})
