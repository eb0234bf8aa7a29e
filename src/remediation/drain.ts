import type { V1Pod } from '@kubernetes/client-node'
import type { Logger } from 'pino'
import { isClusterError, type Cluster } from '../cluster.ts'
import { deadlineSignal, sleep } from '../timers.ts'
import { FencedError } from './store.ts'

/**
 * Drains one node through the Eviction API, so PodDisruptionBudgets are respected: several pods
 * at a time, 429s retried after the server's Retry-After (never sooner than our own backoff),
 * deletion awaited through the cluster's watch rather than by polling, and a hard deadline with
 * an explicit `drain-timeout` outcome instead of kubectl's silent hang.
 */
export type DrainOptions = {
  cluster: Cluster
  node: string
  /** Epoch ms. */
  deadline: number
  concurrency: number
  /** Pods with this annotation set to "true" are left in place. */
  excludeAnnotation: string
  /** At the deadline, delete what is left with grace 0 instead of giving up. Off by default. */
  forceDeleteOnTimeout: boolean
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
  outcome: 'drained' | 'drain-timeout' | 'force-deleted'
  evicted: number
  skipped: Array<{ pod: string, reason: string }>
  /** Pods still on the node when the deadline came. */
  remaining: string[]
}

const podName = (pod: V1Pod) => `${pod.metadata?.namespace}/${pod.metadata?.name}`

/** Why a pod stays on a draining node, or undefined when it must be evicted. Same order as kubectl's filters. */
export function skipReason (pod: V1Pod, excludeAnnotation: string): string | undefined {
  const phase = pod.status?.phase
  if (phase === 'Succeeded' || phase === 'Failed') return `finished (${phase})`
  if (pod.metadata?.ownerReferences?.some(owner => owner.kind === 'DaemonSet') === true) return 'DaemonSet pod'
  if (pod.metadata?.annotations?.['kubernetes.io/config.mirror'] !== undefined) return 'mirror pod'
  if (pod.metadata?.annotations?.[excludeAnnotation] === 'true') return `opted out by ${excludeAnnotation}`
  return undefined
}


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

  const evictAndWait = async (pod: V1Pod) => {
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
        options.onEviction?.('error')
        log.warn({ pod: name, err, retryInMs: backoff, unavailable: isClusterError(err, 'unavailable') }, 'eviction failed; retrying')
      }
      await sleep(wait, signal)
    }
    await cluster.waitForPodGone(pod, signal)
  }

  try {
    // Level-triggered: list again after each pass, so pods that landed during the drain go too.
    for (;;) {
      const pods = (await cluster.listPodsOnNode(node)).filter(pod => {
        const reason = skipReason(pod, options.excludeAnnotation)
        if (reason !== undefined && !skipped.has(podName(pod))) {
          skipped.add(podName(pod))
          result.skipped.push({ pod: podName(pod), reason })
        }
        return reason === undefined
      })
      if (pods.length === 0) return result
      log.info({ node, pods: pods.length }, 'evicting pods')
      await forEachConcurrently(pods, options.concurrency, evictAndWait)
    }
  } catch (err) {
    if (options.signal.aborted || !deadline.signal.aborted) throw err
    return await atDeadline(options, result)
  } finally {
    deadline.clear()
  }
}

async function atDeadline (options: DrainOptions, result: DrainResult): Promise<DrainResult> {
  const left = (await options.cluster.listPodsOnNode(options.node)).filter(pod => skipReason(pod, options.excludeAnnotation) === undefined)
  result.remaining = left.map(podName)
  if (!options.forceDeleteOnTimeout || left.length === 0) {
    return { ...result, outcome: left.length === 0 ? 'drained' : 'drain-timeout' }
  }
  for (const pod of left) await options.cluster.deletePod(pod.metadata!.namespace!, pod.metadata!.name!, 0)
  options.log.warn({ node: options.node, pods: result.remaining }, 'drain deadline reached; force-deleted the remaining pods as configured')
  return { ...result, outcome: 'force-deleted' }
}

