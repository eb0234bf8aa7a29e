import type { Test } from 'tap'
import type { V1Node } from '@kubernetes/client-node'
import { ProviderError } from '../../src/providers/provider.ts'
import type { Provider, ProviderAction, ProviderResult } from '../../src/providers/provider.ts'

/** A machine action that changes the machine (as opposed to 'none'). */
export type MachineAction = Exclude<ProviderAction, 'none'>

/**
 * What a provider does with a machine action:
 * - 'acts': performs it exactly once per remediationId (the default for both actions);
 * - 'ignores': succeeds without touching the machine (e.g. the `none` provider);
 * - 'unsupported': refuses with a non-retryable ProviderError and does not touch the machine.
 */
export type ActionSupport = 'acts' | 'ignores' | 'unsupported'

export type ConformanceSetup = {
  provider: Provider
  /** A fresh node whose machine has not been acted on yet. Called once per check. */
  makeNode (): Promise<V1Node>
  /** How many times the machine behind `node` was rebooted (action 'reboot') or replaced (action 'replace'). */
  wasActedOn (node: V1Node, action: MachineAction): Promise<number>
  teardown (): Promise<void>
  /** Per-action behaviour; both default to 'acts'. */
  supports?: Partial<Record<MachineAction, ActionSupport>>
  /** What a replace that acted says became of the machine: replaced elsewhere (default), or restarted in place. */
  replaceOutcome?: 'replacing' | 'restarted'
  /** Upper bound for "rejects promptly" on an aborted signal; default 2000 ms. */
  promptMs?: number
}

const MACHINE_ACTIONS: MachineAction[] = ['reboot', 'replace']
let idCounter = 0
function remediationId (label: string): string {
  idCounter++
  return `conformance-${label}-${idCounter}`
}

function liveSignal (): AbortSignal {
  return new AbortController().signal
}

/** Settles `promise` or reports a timeout, so a hanging provider fails the check instead of the whole run. */
async function within<T> (ms: number, promise: Promise<T>): Promise<{ ok: true, value: T } | { ok: false, error: unknown, timedOut: boolean }> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<'timeout'>(resolve => { timer = setTimeout(() => resolve('timeout'), ms) })
  try {
    const outcome = await Promise.race([promise.then(value => ({ value }), (error: unknown) => ({ error })), timeout])
    if (outcome === 'timeout') return { ok: false, error: new Error(`no answer within ${ms}ms`), timedOut: true }
    if ('error' in outcome) return { ok: false, error: outcome.error, timedOut: false }
    return { ok: true, value: outcome.value }
  } finally {
    clearTimeout(timer)
  }
}

function checkDetail (t: Test, result: ProviderResult, what: string): void {
  t.type(result.detail, 'string', `${what}: detail is a string`)
  t.ok(typeof result.detail === 'string' && result.detail.trim().length > 0, `${what}: detail is not empty`)
}

/**
 * The contract every Provider must meet (src/providers/provider.ts), checked against a real or
 * emulated backend. `setup` runs once per call of providerConformance; each check makes its own node.
 */
export function providerConformance (t: Test, name: string, setup: () => Promise<ConformanceSetup>): Promise<void> {
  return t.test(`provider conformance: ${name}`, async t => {
    const s = await setup()
    t.teardown(() => s.teardown())
    const promptMs = s.promptMs ?? 2000
    const callTimeoutMs = 60_000
    const support = (action: MachineAction): ActionSupport => s.supports?.[action] ?? 'acts'

    t.equal(typeof s.provider.name, 'string', 'provider has a name')
    t.ok(s.provider.name.length > 0, 'provider name is not empty')

    for (const action of MACHINE_ACTIONS) {
      const mode = support(action)
      const other: MachineAction = action === 'reboot' ? 'replace' : 'reboot'

      if (mode === 'unsupported') {
        await t.test(`${action} is refused (declared unsupported)`, async t => {
          const node = await s.makeNode()
          const outcome = await within(callTimeoutMs, s.provider.remediate({ node, action, remediationId: remediationId(action), signal: liveSignal() }))
          t.notOk(outcome.ok, 'rejects')
          if (!outcome.ok) {
            t.ok(outcome.error instanceof ProviderError, 'with a ProviderError')
            t.equal(outcome.error instanceof ProviderError && outcome.error.retryable, false, 'that is not retryable')
          }
          t.equal(await s.wasActedOn(node, action), 0, `machine not ${action}ed`)
        })
        continue
      }

      await t.test(`${action}: succeeds and acts ${mode === 'acts' ? 'exactly once' : 'never'} for a repeated remediationId`, async t => {
        const node = await s.makeNode()
        const id = remediationId(action)
        const expected = mode === 'acts' ? 1 : 0

        const first = await within(callTimeoutMs, s.provider.remediate({ node, action, remediationId: id, signal: liveSignal() }))
        t.ok(first.ok, `first call resolves${first.ok ? '' : `: ${String(first.error)}`}`)
        if (first.ok) checkDetail(t, first.value, `first ${action}`)
        t.equal(await s.wasActedOn(node, action), expected, `acted ${expected} time(s) after the first call`)

        const second = await within(callTimeoutMs, s.provider.remediate({ node, action, remediationId: id, signal: liveSignal() }))
        t.ok(second.ok, `second call with the same remediationId resolves${second.ok ? '' : `: ${String(second.error)}`}`)
        if (second.ok) checkDetail(t, second.value, `repeated ${action}`)
        // What the engine waits for next: a restart in place, a replacement elsewhere, or nothing (never a fix).
        const said = mode !== 'acts' ? 'not-performed' : action === 'reboot' ? 'restarted' : s.replaceOutcome ?? 'replacing'
        for (const [call, outcome] of [['first', first], ['repeated', second]] as const) {
          if (outcome.ok) t.equal(outcome.value.outcome, said, `${call} ${action} says ${said}`)
        }
        t.equal(await s.wasActedOn(node, action), expected, `still acted ${expected} time(s) after the repeat`)
        t.equal(await s.wasActedOn(node, other), 0, `the machine was not ${other === 'reboot' ? 'rebooted' : 'replaced'}`)
      })

      await t.test(`${action} with an already-aborted signal rejects promptly and does not act`, async t => {
        const node = await s.makeNode()
        const controller = new AbortController()
        controller.abort(new Error('conformance: aborted before the call'))
        const started = performance.now()
        const outcome = await within(promptMs, s.provider.remediate({ node, action, remediationId: remediationId(`${action}-aborted`), signal: controller.signal }))
        const elapsed = performance.now() - started
        t.notOk(outcome.ok, 'rejects')
        if (!outcome.ok) {
          t.notOk(outcome.timedOut, `within ${promptMs}ms (took ${Math.round(elapsed)}ms)`)
          t.ok(outcome.error instanceof ProviderError, `with a ProviderError (got ${String(outcome.error)})`)
        }
        t.equal(await s.wasActedOn(node, action), 0, 'machine not acted on')
      })
    }

    await t.test("action 'none' succeeds and never acts", async t => {
      const node = await s.makeNode()
      const id = remediationId('none')
      for (const round of [1, 2]) {
        const outcome = await within(callTimeoutMs, s.provider.remediate({ node, action: 'none', remediationId: id, signal: liveSignal() }))
        t.ok(outcome.ok, `call ${round} resolves${outcome.ok ? '' : `: ${String(outcome.error)}`}`)
        if (outcome.ok) checkDetail(t, outcome.value, `none (call ${round})`)
        if (outcome.ok) t.equal(outcome.value.outcome, 'not-performed', `none (call ${round}) says nothing was performed`)
      }
      for (const action of MACHINE_ACTIONS) t.equal(await s.wasActedOn(node, action), 0, `not ${action === 'reboot' ? 'rebooted' : 'replaced'}`)
    })

    await t.test("action 'none' with an already-aborted signal rejects promptly", async t => {
      const node = await s.makeNode()
      const controller = new AbortController()
      controller.abort(new Error('conformance: aborted before the call'))
      const outcome = await within(promptMs, s.provider.remediate({ node, action: 'none', remediationId: remediationId('none-aborted'), signal: controller.signal }))
      t.notOk(outcome.ok, 'rejects')
      if (!outcome.ok) {
        t.notOk(outcome.timedOut, `within ${promptMs}ms`)
        t.ok(outcome.error instanceof ProviderError, 'with a ProviderError')
      }
    })
  }).then(() => undefined)
}
