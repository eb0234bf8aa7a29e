import { ApiException, CoreV1Api, Watch, type KubeConfig, type V1Pod } from '@kubernetes/client-node'
import type { Logger } from 'pino'
import { isClusterError } from '../cluster.ts'
import { sleep } from '../timers.ts'
import { httpStatusOf, toClusterError } from './errors.ts'

/**
 * Waits for one pod (by uid) to be gone, through a watch on its name started from a fresh read's
 * resourceVersion: no polling. When the watch ends (client-node's Watch closes a silent stream
 * after 30 s; the server ends watches too; a resourceVersion can expire with 410) we read and
 * watch again. Network faults are retried until the caller's signal aborts, as the drain's
 * deadline bounds the wait; only a refusal (403, 400…) rejects early.
 */
export type PodGoneWaiter = {
  wait (pod: V1Pod, signal: AbortSignal): Promise<void>
  /** Ends every wait in progress (they reject) and aborts their watch requests. */
  close (): void
}

type WatchOutcome = 'gone' | 'ended'

const MAX_RETRY_DELAY_MS = 10_000
/** A watch that ends sooner than this is re-armed after a pause, so a flapping server is not hammered. */
const MIN_WATCH_MS = 1000

export function createPodGoneWaiter (kubeConfig: KubeConfig, log: Logger): PodGoneWaiter {
  const core = kubeConfig.makeApiClient(CoreV1Api)
  const watcher = new Watch(kubeConfig)
  const closing = new AbortController()

  async function read (namespace: string, name: string): Promise<V1Pod | undefined> {
    try {
      return await core.readNamespacedPod({ name, namespace })
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined
      throw err
    }
  }

  /** One watch request; settles when the pod is gone, the watch ends, or the signal aborts. */
  function watchOnce (namespace: string, name: string, uid: string, resourceVersion: string, signal: AbortSignal): Promise<WatchOutcome> {
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
      const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`
      const query = { fieldSelector: `metadata.name=${name}`, resourceVersion }
      watcher.watch(path, query, (type, object: V1Pod | undefined) => {
        const seenUid = object?.metadata?.uid
        // A pod of the same name with another uid (a StatefulSet's next one) means ours is gone.
        if ((type === 'DELETED' && seenUid === uid) || ((type === 'ADDED' || type === 'MODIFIED') && seenUid !== uid)) {
          settle(() => resolve('gone'))
        } else if (type === 'ERROR') {
          // Typically 410 Gone: our resourceVersion is too old. Read and watch again.
          settle(() => resolve('ended'))
        }
      }, (err: unknown) => {
        const timedOut = (err as { name?: unknown } | null)?.name === 'TimeoutError'
        if (err === null || err === undefined || timedOut || httpStatusOf(err) === 410) settle(() => resolve('ended'))
        else settle(() => reject(err))
      }).then(controller => {
        request = controller
        if (settled) controller.abort()
      }, (err: unknown) => settle(() => reject(err)))
    })
  }

  async function wait (pod: V1Pod, callerSignal: AbortSignal): Promise<void> {
    const namespace = pod.metadata!.namespace!
    const name = pod.metadata!.name!
    const uid = pod.metadata!.uid!
    const what = `wait for pod ${namespace}/${name} to be gone`
    const signal = AbortSignal.any([callerSignal, closing.signal])
    for (let failures = 0; ;) {
      signal.throwIfAborted()
      const started = Date.now()
      try {
        const current = await read(namespace, name)
        if (current === undefined || current.metadata?.uid !== uid) return
        const outcome = await watchOnce(namespace, name, uid, current.metadata!.resourceVersion!, signal)
        if (outcome === 'gone') return
        failures = 0
        if (Date.now() - started < MIN_WATCH_MS) await sleep(MIN_WATCH_MS, signal)
      } catch (err) {
        if (signal.aborted) throw signal.reason
        const mapped = toClusterError(err, what)
        if (!isClusterError(mapped, 'unavailable')) throw mapped
        const delay = Math.min(MAX_RETRY_DELAY_MS, 500 * 2 ** failures++)
        log.warn({ err: mapped, retryInMs: delay }, 'pod watch failed; retrying')
        await sleep(delay, signal)
      }
    }
  }

  return {
    wait,
    close () {
      closing.abort(new Error('the cluster connection was closed'))
    }
  }
}
