// What src/kube/cluster.ts puts on the wire and how it reads answers the real control plane does not
// readily give (a Retry-After header): against a small fake API server over plain HTTP.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { pino } from 'pino'
import { KubeConfig } from '@kubernetes/client-node'
import { createKubeCluster } from '../../src/kube/cluster.ts'
import { nodeRef } from '../../src/remediation/store.ts'

type Seen = { method: string, url: string, contentType: string | undefined, body: any }

async function readBody (req: IncomingMessage): Promise<any> {
  let text = ''
  for await (const chunk of req) text += String(chunk)
  return text === '' ? undefined : JSON.parse(text)
}

function json (res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(code, { 'content-type': 'application/json', ...headers })
  res.end(JSON.stringify(body))
}

const node = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', uid: 'uid-n1', resourceVersion: '8' }, spec: {} }

t.test('requests and answers on the wire', async t => {
  const seen: Seen[] = []
  const watches = new Set<ServerResponse>()
  const server = createServer(async (req, res) => {
    const body = await readBody(req)
    seen.push({ method: req.method!, url: req.url!, contentType: req.headers['content-type'], body })
    const url = new URL(req.url!, 'http://x')
    if (url.pathname === '/api/v1/nodes' && url.searchParams.get('watch') === 'true') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.flushHeaders()
      watches.add(res)
      return
    }
    if (url.pathname === '/api/v1/nodes') return json(res, 200, { kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: '7' }, items: [node] })
    if (url.pathname === '/api/v1/nodes/n1' && req.method === 'PATCH') return json(res, 200, node)
    if (url.pathname === '/api/v1/namespaces/default/pods/blocked/eviction') {
      return json(res, 429, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'Cannot evict pod as it would violate the pod\'s disruption budget.', reason: 'TooManyRequests', code: 429 }, { 'retry-after': '3' })
    }
    if (url.pathname === '/api/v1/namespaces/default/pods/ok/eviction') return json(res, 201, { kind: 'Status', apiVersion: 'v1', status: 'Success', code: 201 })
    if (url.pathname === '/api/v1/namespaces/default/pods/broken/eviction') return json(res, 503, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'etcd is unhappy', code: 503 })
    if (url.pathname === '/apis/events.k8s.io/v1/namespaces/default/events') return json(res, 201, body)
    json(res, 404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'not here', code: 404 })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const res of watches) res.destroy()
    server.closeAllConnections()
    server.close()
  })
  const kubeConfig = new KubeConfig()
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: 'fake', token: 'fake' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'fake' }],
    currentContext: 'fake'
  })
  const cluster = await createKubeCluster({ kubeConfig, reportingController: 'example.com/shc', reportingInstance: 'replica-1', log: pino({ level: 'silent' }) })
  t.teardown(() => cluster.close())
  t.equal(cluster.synced(), true, 'synced from one list and an open watch')
  t.match(seen.find(s => s.url.includes('watch=true'))?.url, /resourceVersion=7/, 'the watch starts at the list\'s resourceVersion')

  await cluster.patchNode('n1', { annotations: { 'example.com/a': '1', 'example.com/b': null }, unschedulable: true }, '8')
  const patch = seen.find(s => s.method === 'PATCH')!
  t.equal(patch.url, '/api/v1/nodes/n1')
  t.equal(patch.contentType, 'application/merge-patch+json', 'a JSON merge patch, not client-node\'s default JSON Patch')
  t.same(patch.body, { metadata: { resourceVersion: '8', annotations: { 'example.com/a': '1', 'example.com/b': null } }, spec: { unschedulable: true } })

  t.same(await cluster.evictPod('default', 'blocked'), { status: 'blocked', message: 'Cannot evict pod as it would violate the pod\'s disruption budget.', retryAfterMs: 3000 }, 'Retry-After becomes retryAfterMs')
  t.same(await cluster.evictPod('default', 'ok'), { status: 'evicted' })
  const eviction = seen.find(s => s.url === '/api/v1/namespaces/default/pods/ok/eviction')!
  t.equal(eviction.method, 'POST')
  t.same(eviction.body, { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: 'ok', namespace: 'default' } })
  t.same(await cluster.evictPod('default', 'missing'), { status: 'gone' })
  await t.rejects(cluster.evictPod('default', 'broken'), { name: 'ClusterError', kind: 'unavailable', message: /HTTP 503: etcd is unhappy/ })

  await cluster.recordEvent(nodeRef((await cluster.listNodes())[0]!), { type: 'Normal', reason: 'RemediationCordoned', action: 'cordoned', note: 'cordoned for NodeDiskIOPSSaturated' })
  const event = seen.find(s => s.url.startsWith('/apis/events.k8s.io/'))!
  t.equal(event.method, 'POST')
  t.match(event.body, {
    apiVersion: 'events.k8s.io/v1',
    kind: 'Event',
    metadata: { name: /^n1\.[0-9a-f]{16}$/, namespace: 'default' },
    regarding: { apiVersion: 'v1', kind: 'Node', name: 'n1', uid: 'uid-n1' },
    type: 'Normal',
    reason: 'RemediationCordoned',
    action: 'cordoned',
    note: 'cordoned for NodeDiskIOPSSaturated',
    reportingController: 'example.com/shc',
    reportingInstance: 'replica-1',
    eventTime: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/
  })
})
