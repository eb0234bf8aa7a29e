import type { V1Node } from '@kubernetes/client-node'
import type { Logger } from 'pino'
import type { Cluster } from '../cluster.ts'
import type { Metrics } from '../metrics.ts'
import type { PolicyConfig } from '../policy/config.ts'
import type { Provider, ProviderResult } from '../providers/provider.ts'
import { drainNode } from './drain.ts'
import type { NodeRecord } from './record.ts'
import type { NodeView } from './snapshot.ts'
import type { NodeStore } from './store.ts'
import { backFromReboot, beginDrain, drainSucceeded, failRemediation, machineRebooting, remediationSucceeded } from './transitions.ts'

export type WorkerDeps = {
  cluster: Cluster
  store: NodeStore
  provider: Provider
  policy: PolicyConfig
  drain: { concurrency: number, backoff: { initialMs: number, maxMs: number }, forceDeleteOnTimeout: boolean, excludeAnnotation: string }
  metrics: Metrics
  log: Logger
  now: () => number
}

const sameRemediation = (view: NodeView, record: NodeRecord, phase: NodeRecord['phase']) =>
  view.record?.phase === phase && view.record.remediationId === record.remediationId

/**
 * Resolves once `done` holds for the node (or it is gone), or when the deadline passes; rejects
 * when the signal aborts. Woken by node changes rather than polling; checks the current state
 * after subscribing, so a change in between is not missed.
 */
function waitForNode (name: string, done: (view: NodeView) => boolean, deadline: number, signal: AbortSignal, deps: WorkerDeps): Promise<void> {
  signal.throwIfAborted()
  return new Promise<void>((resolve, reject) => {
    let settled = false
    const finish = (err?: unknown) => {
      if (settled) return
      settled = true
      unsubscribe()
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
      if (err === undefined) resolve()
      else reject(err)
    }
    const onAbort = () => finish(signal.reason)
    const unsubscribe = deps.cluster.onNodeChange((node: V1Node) => {
      if (node.metadata?.name === name && done(deps.store.toView(node))) finish()
    })
    const timer = setTimeout(finish, Math.max(0, deadline - deps.now()))
    signal.addEventListener('abort', onAbort, { once: true })
    deps.store.view(name).then(current => { if (current === undefined || done(current.view)) finish() }, finish)
  })
}

/**
 * Walks one node through cordoned → draining → remediating (→ rebooting) → cooldown, persisting
 * each step before taking it. Starts from whatever phase is persisted, so an interrupted remediation
 * resumes where it stopped; ends when the node leaves those phases or the signal aborts.
 */
export async function remediateNode (name: string, signal: AbortSignal, deps: WorkerDeps): Promise<void> {
  const { store, provider, policy, metrics, now } = deps
  for (;;) {
    signal.throwIfAborted()
    const current = await store.view(name)
    const record = current?.view.record
    if (current === undefined || record === undefined) return
    if (record.phase === 'cordoned') {
      await store.persist(name, view => sameRemediation(view, record, 'cordoned') ? beginDrain(view.record!, now(), policy) : undefined)
    } else if (record.phase === 'draining') {
      const started = now()
      const result = await drainNode({
        cluster: deps.cluster,
        node: name,
        deadline: Date.parse(record.drainDeadline!),
        concurrency: deps.drain.concurrency,
        excludeAnnotation: deps.drain.excludeAnnotation,
        forceDeleteOnTimeout: deps.drain.forceDeleteOnTimeout,
        backoff: deps.drain.backoff,
        signal,
        now,
        log: deps.log.child({ node: name, remediationId: record.remediationId }),
        onEviction: result => metrics.evictions.inc({ result })
      })
      metrics.drainSeconds.observe({ outcome: result.outcome }, (now() - started) / 1000)
      const summary = `evicted ${result.evicted} pods, skipped ${result.skipped.length} (${result.skipped.map(s => `${s.pod}: ${s.reason}`).join('; ') || 'none'})`
      await store.persist(name, view => {
        if (!sameRemediation(view, record, 'draining')) return undefined
        if (result.outcome === 'drain-timeout') {
          return failRemediation(view.record!, now(), 'drain-timeout', `drain deadline reached with ${result.remaining.length} pods left (${result.remaining.join(', ')}); nothing was force-deleted`)
        }
        return drainSucceeded(view.record!, now(), `${result.outcome === 'force-deleted' ? 'drain deadline reached; remaining pods force-deleted as configured' : 'drained'}: ${summary}`)
      })
    } else if (record.phase === 'remediating') {
      const action = record.alert?.action ?? 'none'
      let outcome: ProviderResult | { error: string }
      try {
        outcome = await provider.remediate({ node: current.node, action, remediationId: record.remediationId!, signal })
        metrics.providerCalls.inc({ provider: provider.name, action, result: 'ok' })
      } catch (err) {
        signal.throwIfAborted()
        metrics.providerCalls.inc({ provider: provider.name, action, result: 'error' })
        outcome = { error: (err as Error).message }
      }
      await store.persist(name, view => {
        if (!sameRemediation(view, record, 'remediating')) return undefined
        if ('error' in outcome) return failRemediation(view.record!, now(), 'provider-failed', `provider ${provider.name} could not ${action} the machine: ${outcome.error}`)
        const detail = `provider ${provider.name}: ${outcome.detail}`
        return outcome.rebooted === true ? machineRebooting(view.record!, now(), policy, detail) : remediationSucceeded(view, now(), policy, detail)
      })
    } else if (record.phase === 'rebooting') {
      const deadline = Date.parse(record.rebootDeadline!)
      await waitForNode(name, backFromReboot, deadline, signal, deps)
      await store.persist(name, view => {
        if (!sameRemediation(view, record, 'rebooting')) return undefined
        if (backFromReboot(view)) return remediationSucceeded(view, now(), policy, `node Ready again on a new boot (${view.bootID})`)
        if (now() >= deadline) return failRemediation(view.record!, now(), 'reboot-timeout', `node not Ready on a new boot by ${record.rebootDeadline}; left cordoned`)
        return undefined
      })
    } else {
      return
    }
  }
}
