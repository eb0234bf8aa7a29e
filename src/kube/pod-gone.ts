import { CoreV1Api, Watch, type KubeConfig, type V1Pod } from '@kubernetes/client-node'
import type { Logger } from 'pino'
import { isClusterError } from '../cluster.ts'
import { sleep } from '../timers.ts'
import { httpStatusOf, toClusterError } from './errors.ts'

/**
 * Waits for pods (by uid) to be gone, through one watch per node — the pods on it, by field
 * selector — shared by every pod of a drain: a drain of N pods costs one list and one watch, not N
 * reads and N watches. The watch starts from its list's resourceVersion, so no deletion falls
 * between them; when it ends (client-node's Watch closes a silent stream after 30 s; the server
 * ends watches too; a resourceVersion can expire with 410) the node is listed and watched again.
 * It lingers a few seconds after its last waiter, for the drain's next eviction. Network faults
 * are retried until the waiters' signals abort (the drain's deadline bounds the wait); a refusal
 * (403, 400…) rejects the waiters.
 */
export type PodGoneWaiter = {
  wait (pod: V1Pod, signal: AbortSignal): Promise<void>
  /** Ends every wait in progress (they reject) and aborts their watch requests. */
  close (): void
}

type Waiter = { resolve: () => void, reject: (err: unknown) => void }

/** One node's watch: the pods seen on it, and who waits for which of them. */
type NodeWatch = {
  waiters: Map<string, Set<Waiter>>
  /** Uids on the node as of the last list plus the watch's events since; undefined until listed. */
  present: Set<string> | undefined
  stop: AbortController
}

const MAX_RETRY_DELAY_MS = 10_000
/** A watch that ends sooner than this is re-armed after a pause, so a flapping server is not hammered. */
const MIN_WATCH_MS = 1000
/** How long a node's watch outlives its last waiter: a drain evicts the next pod soon after. */
const LINGER_MS = 5000

export function createPodGoneWaiter (kubeConfig: KubeConfig, log: Logger): PodGoneWaiter {
  const core = kubeConfig.makeApiClient(CoreV1Api)
  const watcher = new Watch(kubeConfig)
  const closing = new AbortController()
  const nodes = new Map<string, NodeWatch>()

  function gone (entry: NodeWatch, uid: string) {
    entry.present?.delete(uid)
    const waiting = entry.waiters.get(uid)
    if (waiting === undefined) return
    entry.waiters.delete(uid)
    for (const waiter of waiting) waiter.resolve()
  }

  /** One watch request from `resourceVersion`; resolves when the watch ends, rejects on a refusal or abort. */
  function watchOnce (node: string, entry: NodeWatch, resourceVersion: string): Promise<void> {
    const signal = entry.stop.signal
    return new Promise((resolve, reject) => {
      let request: AbortController | undefined
      let settled = false
      const settle = (finish: () => void) => {
        if (settled) return
        settled = true
        signal.removeEventListener('abort', aborted)
        request?.abort()
        finish()
      }
      const aborted = () => settle(() => reject(signal.reason))
      signal.addEventListener('abort', aborted, { once: true })
      watcher.watch('/api/v1/pods', { fieldSelector: `spec.nodeName=${node}`, resourceVersion }, (type, object: V1Pod | undefined) => {
        const uid = object?.metadata?.uid
        if (type === 'ERROR') settle(resolve) // typically 410 Gone: our resourceVersion is too old
        else if (uid === undefined) return
        else if (type === 'DELETED') gone(entry, uid)
        else entry.present?.add(uid)
      }, (err: unknown) => {
        const timedOut = (err as { name?: unknown } | null)?.name === 'TimeoutError'
        if (err === null || err === undefined || timedOut || httpStatusOf(err) === 410) settle(resolve)
        else settle(() => reject(err))
      }).then(controller => {
        request = controller
        if (settled) controller.abort()
      }, (err: unknown) => settle(() => reject(err)))
    })
  }

  /** Lists and watches one node until it has no waiter left (and lingered), or is stopped. */
  async function follow (node: string, entry: NodeWatch) {
    const signal = entry.stop.signal
    for (let failures = 0; !signal.aborted;) {
      const started = Date.now()
      try {
        const list = await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` })
        entry.present = new Set(list.items.map(pod => pod.metadata!.uid!))
        for (const uid of [...entry.waiters.keys()]) if (!entry.present.has(uid)) gone(entry, uid)
        await watchOnce(node, entry, list.metadata!.resourceVersion!)
        failures = 0
        if (Date.now() - started < MIN_WATCH_MS) await sleep(MIN_WATCH_MS, signal)
      } catch (err) {
        if (signal.aborted) return
        const mapped = toClusterError(err, `watch pods on node ${node}`)
        if (!isClusterError(mapped, 'unavailable')) {
          for (const waiting of entry.waiters.values()) for (const waiter of waiting) waiter.reject(mapped)
          entry.waiters.clear()
          retire(node, entry)
          return
        }
        const delay = Math.min(MAX_RETRY_DELAY_MS, 500 * 2 ** failures++)
        log.warn({ err: mapped, retryInMs: delay }, 'pod watch failed; retrying')
        await sleep(delay, signal).catch(() => {})
      }
    }
  }

  function retire (node: string, entry: NodeWatch) {
    entry.stop.abort(new Error('no pod waited for'))
    if (nodes.get(node) === entry) nodes.delete(node)
  }

  const lingering = new Map<string, NodeJS.Timeout>()
  function release (node: string, entry: NodeWatch) {
    if (entry.waiters.size > 0 || lingering.has(node)) return
    const timer = setTimeout(() => {
      lingering.delete(node)
      if (entry.waiters.size === 0) retire(node, entry)
    }, LINGER_MS)
    timer.unref()
    lingering.set(node, timer)
  }

  function wait (pod: V1Pod, signal: AbortSignal): Promise<void> {
    const node = pod.spec?.nodeName
    const uid = pod.metadata!.uid!
    if (closing.signal.aborted) return Promise.reject(closing.signal.reason)
    if (signal.aborted) return Promise.reject(signal.reason)
    // A pod never scheduled has no node to watch: it is gone once deleted, which the eviction did.
    if (node === undefined || node === '') return Promise.resolve()
    let entry = nodes.get(node)
    if (entry === undefined) {
      entry = { waiters: new Map(), present: undefined, stop: new AbortController() }
      nodes.set(node, entry)
      void follow(node, entry)
    }
    clearTimeout(lingering.get(node))
    lingering.delete(node)
    const current = entry
    const promise = new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve: () => { signal.removeEventListener('abort', aborted); resolve(); release(node, current) },
        reject: err => { signal.removeEventListener('abort', aborted); reject(err) }
      }
      const aborted = () => {
        const waiting = current.waiters.get(uid)
        waiting?.delete(waiter)
        if (waiting?.size === 0) current.waiters.delete(uid)
        reject(signal.reason)
        release(node, current)
      }
      signal.addEventListener('abort', aborted, { once: true })
      const waiting = current.waiters.get(uid) ?? new Set()
      waiting.add(waiter)
      current.waiters.set(uid, waiting)
    })
    // Not in the node's list: gone before it was taken, or created after it with its ADDED event
    // still on the way. One read tells which.
    if (current.present !== undefined && !current.present.has(uid)) void confirmGone(pod, current)
    return promise
  }

  async function confirmGone (pod: V1Pod, entry: NodeWatch) {
    const uid = pod.metadata!.uid!
    try {
      const current = await core.readNamespacedPod({ name: pod.metadata!.name!, namespace: pod.metadata!.namespace! })
      if (current.metadata?.uid !== uid) gone(entry, uid)
    } catch (err) {
      // 404: gone. Anything else: the watch still answers, and re-lists when it ends.
      if (httpStatusOf(err) === 404) gone(entry, uid)
    }
  }

  return {
    wait,
    close () {
      closing.abort(new Error('the cluster connection was closed'))
      for (const timer of lingering.values()) clearTimeout(timer)
      lingering.clear()
      for (const [node, entry] of [...nodes]) {
        for (const waiting of entry.waiters.values()) for (const waiter of waiting) waiter.reject(closing.signal.reason)
        entry.waiters.clear()
        retire(node, entry)
      }
    }
  }
}
