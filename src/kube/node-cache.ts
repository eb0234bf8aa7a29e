import { CoreV1Api, ListWatch, Watch, type KubeConfig, type V1Node, type V1NodeList } from '@kubernetes/client-node'
import type { Logger } from 'pino'
import { toClusterError } from './errors.ts'
import { leanNode } from './lean-node.ts'

/**
 * The Node cache behind `listNodes`: client-node's ListWatch (list, then watch from the list's
 * resourceVersion; relist on 410), plus what it leaves to its user:
 * - ListWatch stops for good after an error (it only reports it), so we restart it with backoff.
 * - It has no notion of "synced", so a wrapped Watch tells us when the cache reflects a list and
 *   when a watch stream is open; a cache whose watch has been down longer than `staleAfterMs` is
 *   reported as not synced rather than served as truth.
 * - Watch events arrive as plain JSON while the list is deserialized into classes; the list is
 *   turned into plain JSON too, so every cached node looks the same (timestamps are strings).
 * - Every node is kept as its lean view (lean-node.ts): a kubelet's Node is 10–30 KB of fields no
 *   decision reads. Cached nodes are frozen: shared with every caller, replaced, never edited.
 * - The first list is paginated, so a large fleet is never one huge response in memory at once.
 */
export type NodeCache = {
  list (): V1Node[]
  /**
   * Our own successful write, seen before its watch event arrives: without it a reconcile pass
   * right after a cordon could count the node as not cordoned and start a second drain.
   */
  remember (node: V1Node): void
  synced (): boolean
  /** Why `synced()` is false, for error messages. */
  state (): string
  /** `deleted` is true for a node's last state when it left the cluster. */
  onChange (listener: (node: V1Node, deleted: boolean) => void): () => void
  /** Resolves once the first list and watch succeeded, or the first attempt failed. */
  start (): Promise<void>
  close (): void
}

export type NodeCacheOptions = {
  kubeConfig: KubeConfig
  log: Logger
  staleAfterMs: number
  /** Which annotations the cached nodes keep (the rest are dropped on ingest). */
  keepAnnotation: (key: string) => boolean
  /** Nodes per list page. Default 500, as client-go's pager. */
  pageSize?: number
  now?: () => number
}

const MAX_RESTART_DELAY_MS = 30_000

type WatchFn = Watch['watch']
type WatchHooks = { beforeWatch (): void, opened (): void, closed (): boolean, ingest (node: V1Node): V1Node }

/** A Watch reporting when a watch starts (the cache is filled) and when its stream is open. */
function trackedWatch (kubeConfig: KubeConfig, hooks: WatchHooks): Watch {
  const watch = new Watch(kubeConfig)
  const open: WatchFn = watch.watch.bind(watch)
  watch.watch = async (path, query, callback, done) => {
    // ListWatch goes on from a list to a watch without checking whether it was stopped meanwhile.
    if (hooks.closed()) {
      const controller = new AbortController()
      controller.abort()
      return controller
    }
    hooks.beforeWatch()
    let ended = false
    const controller = await open(path, query, (phase, object, raw) => {
      callback(phase, phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED' ? hooks.ingest(object) : object, raw)
    }, err => { ended = true; done(err) })
    if (hooks.closed()) controller.abort()
    // Watch.watch resolves after the response headers; `done` has already run if it failed.
    else if (!ended) hooks.opened()
    return controller
  }
  return watch
}

export function createNodeCache (options: NodeCacheOptions): NodeCache {
  const { kubeConfig, log, staleAfterMs, keepAnnotation } = options
  const pageSize = options.pageSize ?? 500
  const now = options.now ?? Date.now
  const core = kubeConfig.makeApiClient(CoreV1Api)
  const listeners = new Set<(node: V1Node, deleted: boolean) => void>()
  let everSynced = false
  let listedSinceWatch = false
  /** Since when the watch has been down (reconnecting or failed); undefined while it is open. */
  let downSince: number | undefined = now()
  let lastError = 'the first list is in progress'
  let failures = 0
  let restartTimer: NodeJS.Timeout | undefined
  let closed = false

  const ingest = (node: V1Node) => leanNode(node, keepAnnotation)
  /** Plain JSON first: the typed client's classes hold Dates where the watch has strings. */
  const ingestTyped = (node: V1Node) => ingest(JSON.parse(JSON.stringify(node)) as V1Node)

  // A continue token that expired (410) fails the list; the restart below lists from the start
  // again, which is what a consistent list needs. Every page is served from the first page's
  // snapshot, so the last page's resourceVersion is the one to watch from.
  const list = async (): Promise<V1NodeList> => {
    const items: V1Node[] = []
    let page: V1NodeList
    let next: string | undefined
    do {
      page = await core.listNode(next === undefined ? { limit: pageSize } : { limit: pageSize, _continue: next })
      for (const node of page.items) items.push(ingestTyped(node))
      next = page.metadata?._continue || undefined
    } while (next !== undefined)
    listedSinceWatch = true
    return { items, metadata: { resourceVersion: page.metadata?.resourceVersion } }
  }

  const watch = trackedWatch(kubeConfig, {
    beforeWatch () {
      // ListWatch calls watch right after putting a list's items into its cache.
      if (listedSinceWatch) everSynced = true
      listedSinceWatch = false
    },
    opened () {
      downSince = undefined
      failures = 0
    },
    closed: () => closed,
    ingest
  })
  const informer = new ListWatch<V1Node>('/api/v1/nodes', watch, list, false)

  const failed = (err: unknown) => {
    if (closed) return // stop() aborts the watch, which ListWatch reports as an error
    downSince ??= now()
    const mapped = toClusterError(err, 'list/watch nodes')
    lastError = mapped instanceof Error ? mapped.message : String(mapped)
    const delay = Math.min(MAX_RESTART_DELAY_MS, 1000 * 2 ** failures++)
    log.warn({ err: mapped, retryInMs: delay }, 'node watch failed; restarting it')
    clearTimeout(restartTimer)
    restartTimer = setTimeout(() => { void start() }, delay)
  }
  // Credentials (exec plugins) are fetched before Watch's own error handling: that rejects start().
  const start = async () => {
    if (closed) return
    await informer.start().catch(failed)
  }
  informer.on('connect', () => { downSince ??= now() })
  informer.on('error', failed)

  // Listeners run outside ListWatch's own loop, as the simulated cluster's do: a listener that
  // reads the cache sees it complete, and one that throws cannot break the cache.
  const notify = (node: V1Node, deleted: boolean) => {
    if (listeners.size === 0) return
    setImmediate(() => {
      for (const listener of listeners) {
        try {
          listener(node, deleted)
        } catch (err) {
          log.error({ err }, 'node change listener failed')
        }
      }
    })
  }
  // The list handed out is built once per change, so callers can cache what they derive from it
  // by its identity (the engine's snapshot) instead of rebuilding it for every webhook.
  let listed: V1Node[] | undefined
  const changed = (node: V1Node, deleted = false) => { listed = undefined; notify(node, deleted) }
  informer.on('add', changed)
  informer.on('update', changed)
  informer.on('delete', node => changed(node, true))
  informer.on('connect', () => { listed = undefined })

  // Our writes, served instead of the cached object until the watch delivers that version or a later one.
  const written = new Map<string, V1Node>()
  const version = (node: V1Node | undefined) => Number(node?.metadata?.resourceVersion)
  const newer = (a: V1Node, b: V1Node | undefined) => b === undefined || version(a) > version(b)
  const withOwnWrites = (cached: V1Node[]): V1Node[] => {
    if (written.size === 0) return cached
    return cached.map(node => {
      const own = written.get(node.metadata!.name!)
      if (own === undefined) return node
      // resourceVersions are etcd revisions: integers that only grow. Anything else: trust the watch.
      if (Number.isInteger(version(own)) && Number.isInteger(version(node)) && newer(own, node)) return own
      written.delete(node.metadata!.name!)
      return node
    })
  }

  const synced = () => !closed && everSynced && (downSince === undefined || now() - downSince <= staleAfterMs)

  return {
    list: () => (listed ??= Object.freeze(withOwnWrites(informer.list() as V1Node[])) as V1Node[]),
    remember (node) {
      const name = node.metadata?.name
      if (name !== undefined && newer(node, written.get(name))) {
        written.set(name, ingestTyped(node))
        listed = undefined
      }
    },
    synced,
    state () {
      if (closed) return 'the node cache is closed'
      if (!everSynced) return `the node cache has not synced yet (${lastError})`
      if (synced()) return 'synced'
      return `the node watch has been down for ${Math.round((now() - downSince!) / 1000)}s (${lastError})`
    },
    onChange (listener) {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    },
    start,
    close () {
      closed = true
      clearTimeout(restartTimer)
      listeners.clear()
      void informer.stop()
    }
  }
}
