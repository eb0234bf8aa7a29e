// The node cache against a small fake API server: it lists in pages, watches from the list's
// resourceVersion, and holds lean nodes whatever way they came in (list, watch, our own write).
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { pino } from 'pino'
import { KubeConfig, type V1Node } from '@kubernetes/client-node'
import { keptAnnotations } from '../../src/kube/lean-node.ts'
import { createNodeCache } from '../../src/kube/node-cache.ts'
import { realNode } from './fixtures/real-node.ts'

const ours = keptAnnotations('self-healing-controller.io')
const fleet = Array.from({ length: 5 }, (_, i) => realNode(i))

function isLean (node: V1Node): boolean {
  return node.metadata?.managedFields === undefined && node.status?.images === undefined && node.status?.addresses === undefined &&
    node.status?.conditions?.length === 1 && Object.isFrozen(node) && Object.isFrozen(node.metadata!.labels)
}

async function until (what: string, check: () => boolean): Promise<void> {
  const end = Date.now() + 5000
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

t.test('lists in pages, watches from the last page\'s resourceVersion, serves lean nodes', async t => {
  const requests: URLSearchParams[] = []
  const watches = new Set<ServerResponse>()
  // Pages of 2; each page a different resourceVersion only so the test can tell which one the watch used.
  const pages: Record<string, { items: V1Node[], next?: string, resourceVersion: string }> = {
    '': { items: fleet.slice(0, 2), next: 'page-2', resourceVersion: '1999998' },
    'page-2': { items: fleet.slice(2, 4), next: 'page-3', resourceVersion: '1999999' },
    'page-3': { items: fleet.slice(4), resourceVersion: '2000000' }
  }
  const server = createServer((req, res) => {
    const query = new URL(req.url!, 'http://x').searchParams
    requests.push(query)
    if (query.get('watch') === 'true') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.flushHeaders()
      watches.add(res)
      return
    }
    const page = pages[query.get('continue') ?? '']!
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: page.resourceVersion, ...(page.next ? { continue: page.next } : {}) }, items: page.items }))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const kubeConfig = new KubeConfig()
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'fake', token: 'fake' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'fake' }],
    currentContext: 'fake'
  })

  const cache = createNodeCache({ kubeConfig, log: pino({ level: 'silent' }), staleAfterMs: 30_000, keepAnnotation: ours, pageSize: 2 })
  t.teardown(() => cache.close())
  const heard: V1Node[] = []
  cache.onChange(node => { heard.push(node) })
  await cache.start()
  t.ok(cache.synced(), cache.state())

  const lists = requests.filter(q => q.get('watch') !== 'true')
  t.strictSame(lists.map(q => [q.get('limit'), q.get('continue')]), [['2', null], ['2', 'page-2'], ['2', 'page-3']], 'three pages of two')
  const watch = requests.find(q => q.get('watch') === 'true')
  t.equal(watch?.get('resourceVersion'), '2000000', 'the watch starts from the last page\'s resourceVersion')

  const listed = cache.list()
  t.strictSame(listed.map(n => n.metadata?.name), fleet.map(n => n.metadata?.name), 'every page is in the cache')
  t.ok(listed.every(isLean), 'listed nodes are lean and frozen')
  t.equal(typeof listed[0]!.metadata!.creationTimestamp, 'string', 'timestamps are strings, as the watch delivers them')

  // A watched change: the full node, with one of our annotations and one that is not.
  const changed = realNode(2, { annotations: { 'self-healing-controller.io/phase': 'pending', 'example.com/other': 'x' } })
  changed.metadata!.resourceVersion = '2000001'
  for (const res of watches) res.write(JSON.stringify({ type: 'MODIFIED', object: changed }) + '\n')
  await until('the watched change', () => heard.some(n => n.metadata?.resourceVersion === '2000001'))
  const watched = cache.list().find(n => n.metadata?.name === changed.metadata!.name)!
  t.ok(isLean(watched) && heard.every(isLean), 'a watched node is lean, in the cache and as listeners hear it')
  t.strictSame(watched.metadata?.annotations, { 'self-healing-controller.io/phase': 'pending' }, 'only the annotations we keep')

  // Our own write, as the typed client returns it: a class instance with Dates.
  const written = realNode(3, { annotations: { 'self-healing-controller.io/phase': 'draining' } })
  written.metadata!.resourceVersion = '2000002'
  written.metadata!.creationTimestamp = new Date('2025-03-01T08:00:00Z')
  cache.remember(written)
  const remembered = cache.list().find(n => n.metadata?.name === written.metadata!.name)!
  t.ok(isLean(remembered), 'a remembered write is lean too')
  t.equal(remembered.metadata?.resourceVersion, '2000002')
  t.equal(remembered.metadata?.annotations?.['self-healing-controller.io/phase'], 'draining')
})
