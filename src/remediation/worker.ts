import type { V1Node } from '@kubernetes/client-node'
import type { Logger } from 'pino'
import type { Cluster } from '../cluster.ts'
import type { Metrics } from '../metrics.ts'
import type { PolicyConfig } from '../policy/config.ts'
import type { Provider, ProviderResult } from '../providers/provider.ts'
import type { DrainSwitches } from '../policy/pods.ts'
import { drainNode } from './drain.ts'
import { classifyPods } from './start-checks.ts'
import type { NodeRecord } from './record.ts'
import type { NodeView } from './snapshot.ts'
import { FencedError, nodeRef, type NodeStore } from './store.ts'
import { beginDrain, drainSucceeded, failRemediation, providerDone, type Change } from './transitions.ts'

export type WorkerDeps = {
  cluster: Cluster
  store: NodeStore
  provider: Provider
  policy: PolicyConfig
  drain: { concurrency: number, backoff: { initialMs: number, maxMs: number }, forceDeleteOnTimeout: boolean, switches: DrainSwitches }
  metrics: Metrics
  log: Logger
  now: () => number
  /** True while this replica may act; asked right before every write, eviction and provider call. */
  fence: () => boolean
  /** Every write's result goes back into the engine's picture of the fleet at once. */
  observed: (view: NodeView, node: V1Node) => void
  /** Why no provider call may start now (an operator's pause), read fresh; undefined: go ahead. */
  heldBack: (view: NodeView) => Promise<string | undefined>
}

const sameRemediation = (view: NodeView, record: NodeRecord, phase: NodeRecord['phase']) =>
  view.record?.phase === phase && view.record.remediationId === record.remediationId

/**
 * Walks one node through cordoned → draining → remediating, persisting each step before taking
 * it, and ends once the provider has answered (what follows — waiting for a reboot, a replacement,
 * the verification dwell — is level-triggered in the engine). Starts from whatever phase is
 * persisted, so an interrupted remediation resumes where it stopped; stops when the signal aborts.
 */
export async function remediateNode (name: string, signal: AbortSignal, deps: WorkerDeps): Promise<'stepped' | 'idle'> {
  const { store, provider, policy, metrics, now } = deps
  const persist = async (cached: V1Node | undefined, decide: (view: NodeView) => Change | undefined) => {
    signal.throwIfAborted()
    const result = await store.persist(name, cached, decide, deps.fence)
    if (result !== undefined) deps.observed(result.view, result.node)
  }
  // 'idle': the fresh read showed no step to take (the node is gone, its record ended or belongs
  // to another Node object): the engine's picture was behind, and it must not respawn at once.
  let stepped = false
  for (;;) {
    signal.throwIfAborted()
    const current = await store.read(name)
    const record = current?.view.record
    if (current === undefined || record === undefined) return stepped ? 'stepped' : 'idle'
    if (record.phase === 'cordoned') {
      await persist(current.node, view => sameRemediation(view, record, 'cordoned') ? beginDrain(view.record!, now(), policy) : undefined)
    } else if (record.phase === 'draining') {
      const started = now()
      const result = await drainNode({
        cluster: deps.cluster,
        node: name,
        deadline: Date.parse(record.drainDeadline!),
        concurrency: deps.drain.concurrency,
        classify: pods => classifyPods({ cluster: deps.cluster, switches: deps.drain.switches }, pods, current.view, record.action ?? 'none'),
        nodeReady: async () => (await store.read(name))?.view.ready ?? false,
        forceDeleteOnTimeout: deps.drain.forceDeleteOnTimeout,
        backoff: deps.drain.backoff,
        signal,
        fence: deps.fence,
        now,
        log: deps.log.child({ node: name, remediationId: record.remediationId }),
        onEviction: result => metrics.evictions.inc({ result })
      })
      metrics.drainSeconds.observe({ outcome: result.outcome }, (now() - started) / 1000)
      const summary = `evicted ${result.evicted} pods, skipped ${result.skipped.length} (${result.skipped.map(s => `${s.pod}: ${s.reason}`).join('; ') || 'none'})`
      await persist(undefined, view => {
        if (!sameRemediation(view, record, 'draining')) return undefined
        if (result.outcome === 'drain-timeout') {
          return failRemediation(view.record!, now(), 'drain-timeout', `drain deadline reached with ${result.remaining.length} pods left (${result.remaining.join(', ')}); ${result.detail ?? 'nothing was force-deleted'}`)
        }
        if (result.outcome === 'pdb-misconfigured' || result.outcome === 'protected-pods') {
          return failRemediation(view.record!, now(), result.outcome, `drain stopped: ${result.detail}; left cordoned`)
        }
        return drainSucceeded(view.record!, now(), `${result.outcome === 'force-deleted' ? 'drain deadline reached; remaining pods force-deleted as configured' : 'drained'}: ${summary}`)
      })
    } else if (record.phase === 'remediating') {
      const action = record.action === 'quarantine' || record.action === undefined ? 'none' : record.action
      // The drain was the last safe point: a pause set since holds the machine here, drained and
      // cordoned, until it is lifted (the engine resumes the node then).
      const held = await deps.heldBack(current.view)
      if (held !== undefined) {
        deps.log.info({ node: name, remediationId: record.remediationId }, `provider ${action} of ${name} held: ${held}`)
        await deps.cluster.recordEvent(nodeRef(current.node), { type: 'Normal', reason: 'RemediationHeld', action: 'hold', note: `drained; the ${action} waits until the pause ends (${held})` }).catch(err => deps.log.warn({ err, node: name }, 'could not record event'))
        return 'stepped'
      }
      let outcome: ProviderResult | { error: string }
      if (!deps.fence()) throw new FencedError(`provider ${action} of ${name}`)
      try {
        outcome = await provider.remediate({ node: current.node, action, remediationId: record.remediationId!, signal })
        metrics.providerCalls.inc({ provider: provider.name, action, result: 'ok' })
      } catch (err) {
        signal.throwIfAborted()
        metrics.providerCalls.inc({ provider: provider.name, action, result: 'error' })
        outcome = { error: (err as Error).message }
      }
      await persist(undefined, view => {
        if (!sameRemediation(view, record, 'remediating')) return undefined
        if ('error' in outcome) return failRemediation(view.record!, now(), 'provider-failed', `provider ${provider.name} could not ${action} the machine: ${outcome.error}`)
        return providerDone(view.record!, now(), policy, provider.name, outcome)
      })
    } else {
      return stepped ? 'stepped' : 'idle'
    }
    stepped = true
  }
}
