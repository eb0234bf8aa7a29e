import type { V1Pod } from '@kubernetes/client-node'
import type { Logger } from 'pino'
import { isClusterError, type Cluster } from '../cluster.ts'
import { selectorMatches } from '../policy/capacity.ts'
import { controllerOf, evictionOrder, podName, type PodClass } from '../policy/pods.ts'
import { deadlineSignal, sleep } from '../timers.ts'
import { FencedError } from './store.ts'

/**
 * Drains one node through the Eviction API, so PodDisruptionBudgets are respected. Evictions are
 * asked for several at a time, lower priority first; EVICTION_CONCURRENCY bounds the requests in
 * flight, not the pods waiting to terminate, so pods with long grace periods never keep the rest
 * from being asked to leave. 429s are retried after the server's Retry-After (never sooner than
 * our own backoff), deletion is awaited through the watch, and one deadline bounds the whole drain
 * with an explicit outcome instead of kubectl's silent hang. A pod covered by several budgets ends
 * the drain at once: the API server will never evict it.
 */
export type DrainOptions = {
  cluster: Cluster
  node: string
  /** Epoch ms. */
  deadline: number
  concurrency: number
  /** The classification of the node's pods, as decided before the cordon (it reads the cluster). */
  classify: (pods: readonly V1Pod[]) => Promise<PodClass[]>
  /** At the deadline, delete what is left with grace 0 instead of giving up. Off by default. */
  forceDeleteOnTimeout: boolean
  /** Whether the node is Ready now: a StatefulSet pod on a Ready node is never force-deleted (two copies of one identity). */
  nodeReady: () => Promise<boolean>
  backoff: { initialMs: number, maxMs: number }
  /** Aborted when the drain must stop: an operator uncordoned the node, leadership was lost, shutdown. */
  signal: AbortSignal
  /** Asked right before every eviction: false means this replica may no longer act. */
  fence: () => boolean
  now: () => number
  log: Logger
  onEviction?: (result: 'evicted' | 'blocked' | 'error') => void
}

export type DrainResult = {
  outcome: 'drained' | 'drain-timeout' | 'force-deleted' | 'pdb-misconfigured' | 'protected-pods'
  evicted: number
  skipped: Array<{ pod: string, reason: string }>
  /** Pods still on the node when the drain ended without draining it. */
  remaining: string[]
  /** Why the drain ended early (pdb-misconfigured, protected-pods). */
  detail?: string
}

/** A drain that cannot complete, known before its deadline. */
class DrainStopped extends Error {
  readonly outcome: 'pdb-misconfigured' | 'protected-pods'
  constructor (outcome: 'pdb-misconfigured' | 'protected-pods', message: string) {
    super(message)
    this.outcome = outcome
  }
}

const SEVERAL_BUDGETS = /more than one PodDisruptionBudget/i

async function forEachConcurrently<T> (items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}

export async function drainNode (options: DrainOptions): Promise<DrainResult> {
  const { cluster, node, log, now } = options
  const deadline = deadlineSignal(options.deadline - now())
  const signal = AbortSignal.any([options.signal, deadline.signal])
  const result: DrainResult = { outcome: 'drained', evicted: 0, skipped: [], remaining: [] }
  const skipped = new Set<string>()
  // Pods asked to leave, by uid, with the wait for them to be gone.
  const leaving = new Map<string, Promise<void>>()

  const budgetsOf = async (pod: V1Pod) => {
    const budgets = await cluster.listDisruptionBudgets(pod.metadata!.namespace!).catch(() => [])
    return budgets.filter(b => selectorMatches(b.spec?.selector, pod.metadata?.labels ?? {})).map(b => b.metadata!.name!)
  }

  /** Asks one pod to leave (retrying refusals) and returns once the API accepted; the wait is tracked apart. */
  const evict = async (pod: V1Pod) => {
    const name = podName(pod)
    for (let attempt = 0; ; attempt++) {
      const backoff = Math.min(options.backoff.maxMs, options.backoff.initialMs * 2 ** attempt)
      let wait = backoff
      if (!options.fence()) throw new FencedError(`eviction of ${name}`)
      try {
        const answer = await cluster.evictPod(pod.metadata!.namespace!, pod.metadata!.name!)
        if (answer.status !== 'blocked') {
          options.onEviction?.('evicted')
          if (answer.status === 'evicted') result.evicted++
          break
        }
        options.onEviction?.('blocked')
        wait = Math.max(answer.retryAfterMs ?? 0, backoff)
        log.info({ pod: name, retryInMs: wait, message: answer.message }, 'eviction refused for now')
      } catch (err) {
        if (signal.aborted) throw signal.reason
        if (isClusterError(err, 'invalid') && SEVERAL_BUDGETS.test(err.message)) {
          const budgets = await budgetsOf(pod)
          throw new DrainStopped('pdb-misconfigured', `${name} is covered by more than one PodDisruptionBudget (${budgets.join(', ') || 'names not readable'}); the API server never evicts such a pod`)
        }
        options.onEviction?.('error')
        log.warn({ pod: name, err, retryInMs: backoff, unavailable: isClusterError(err, 'unavailable') }, 'eviction failed; retrying')
      }
      await sleep(wait, signal)
    }
    const gone = cluster.waitForPodGone(pod, signal)
    gone.catch(() => {})
    leaving.set(pod.metadata!.uid!, gone)
  }

  try {
    // Level-triggered: list again after each round, so pods that landed during the drain go too.
    for (;;) {
      const pods = await cluster.listPodsOnNode(node)
      const classes = await options.classify(pods)
      const held = classes.filter(c => c.kind === 'protected')
      if (held.length > 0) throw new DrainStopped('protected-pods', `pods that cannot be evicted safely appeared on the node: ${held.map(c => `${c.pod}: ${c.reason}`).join('; ')}`)
      const evictable = new Set(classes.filter(c => c.kind === 'evictable').map(c => c.pod))
      for (const c of classes) {
        if (c.kind === 'skipped' && !skipped.has(c.pod)) {
          skipped.add(c.pod)
          result.skipped.push({ pod: c.pod, reason: c.reason })
        }
      }
      const toEvict = pods.filter(pod => evictable.has(podName(pod)) && !leaving.has(pod.metadata!.uid!)).sort(evictionOrder)
      if (toEvict.length === 0 && leaving.size === 0) return result
      if (toEvict.length > 0) log.info({ node, pods: toEvict.length }, 'evicting pods')
      await forEachConcurrently(toEvict, options.concurrency, evict)
      await Promise.all(leaving.values())
      leaving.clear()
    }
  } catch (err) {
    if (err instanceof DrainStopped) {
      const left = (await cluster.listPodsOnNode(node).catch(() => [] as V1Pod[])).map(podName)
      return { ...result, outcome: err.outcome, remaining: left, detail: err.message }
    }
    if (options.signal.aborted || !deadline.signal.aborted) throw err
    return await atDeadline(options, result)
  } finally {
    deadline.clear()
  }
}

async function atDeadline (options: DrainOptions, result: DrainResult): Promise<DrainResult> {
  const pods = await options.cluster.listPodsOnNode(options.node)
  const classes = await options.classify(pods)
  const evictable = new Set(classes.filter(c => c.kind === 'evictable').map(c => c.pod))
  const left = pods.filter(pod => evictable.has(podName(pod)))
  result.remaining = left.map(podName)
  if (!options.forceDeleteOnTimeout || left.length === 0) {
    return { ...result, outcome: left.length === 0 ? 'drained' : 'drain-timeout' }
  }
  // A StatefulSet pod on a node whose kubelet may still run it: deleting it would let its
  // replacement start while the old copy runs, two pods with one identity. Kept.
  const ready = await options.nodeReady()
  const deletable = left.filter(pod => !(ready && controllerOf(pod)?.kind === 'StatefulSet'))
  for (const pod of deletable) await options.cluster.deletePod(pod.metadata!.namespace!, pod.metadata!.name!, 0)
  const kept = left.filter(pod => !deletable.includes(pod)).map(podName)
  options.log.warn({ node: options.node, deleted: deletable.map(podName), kept }, 'drain deadline reached; force-deleted the remaining pods as configured')
  if (kept.length > 0) return { ...result, remaining: kept, outcome: 'drain-timeout', detail: `StatefulSet pods on a Ready node are never force-deleted: ${kept.join(', ')}` }
  return { ...result, outcome: 'force-deleted' }
}
