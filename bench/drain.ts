import { performance } from 'node:perf_hooks'
import { join } from 'node:path'
import { pino } from 'pino'
import { parseAllDocuments } from 'yaml'
import { defaultConfig, view } from '../test/support/core.ts'
import { ensureBinaries, startControlPlane, waitFor } from '../test/support/controlplane.ts'
import { saUser } from '../test/support/scenario.ts'
import { createKubeCluster } from '../src/kube/cluster.ts'
import { engineConfigOf } from '../src/config.ts'
import { drainNode } from '../src/remediation/drain.ts'
import { classifyPods } from '../src/remediation/start-checks.ts'
import { KubeConfig } from '@kubernetes/client-node'

/**
 * Drain wall time of a KWOK node running 110 pods, ours (with the shipped settings and the
 * deploy/ ClusterRole) against `kubectl drain --ignore-daemonsets --delete-emptydir-data` of an
 * identical node, on the same control plane in the same run; plus the API requests ours made.
 */
const podsPerNode = 110

function filler (node: string): string {
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: `fill-${node}`, namespace: 'default' },
    spec: {
      replicas: podsPerNode,
      selector: { matchLabels: { app: `fill-${node}` } },
      template: {
        metadata: { labels: { app: `fill-${node}` } },
        spec: { nodeSelector: { bench: node }, containers: [{ name: 'app', image: 'registry.example/app:1' }] }
      }
    }
  })
}

export async function benchDrain () {
  const cp = await startControlPlane({ binDir: await ensureBinaries() })
  try {
    await cp.createFakeNodes(['ours', 'theirs'].map(name => ({ name, labels: { bench: name } })))
    const rendered = await cp.kubectl(['kustomize', new URL('../deploy/', import.meta.url).pathname])
    const rbac = parseAllDocuments(rendered.stdout).map(d => d.toJSON()).filter(o => ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding'].includes(o?.kind))
    await cp.kubectl(['apply', '-f', '-'], { input: rbac.map(o => JSON.stringify(o)).join('\n') })
    await cp.kubectl(['apply', '-f', '-'], { input: `${filler('ours')}\n${filler('theirs')}` })
    const running = async (node: string) => {
      const out = await cp.kubectl(['get', 'pods', '-n', 'default', '--field-selector', `spec.nodeName=${node},status.phase=Running`, '-o', 'name'])
      return out.stdout.split('\n').filter(Boolean).length
    }
    for (const node of ['ours', 'theirs']) await waitFor(`${podsPerNode} pods on ${node}`, async () => await running(node) === podsPerNode, { timeoutMs: 180_000, intervalMs: 1000 })

    const token = (await cp.kubectl(['create', 'token', 'self-healing-controller', '-n', 'self-healing-controller'])).stdout.trim()
    const kubeConfig = new KubeConfig()
    kubeConfig.loadFromFile(cp.kubeconfigForToken(token, join(cp.dir, 'bench.kubeconfig')))
    const log = pino({ level: 'silent' })
    const cluster = await createKubeCluster({ kubeConfig, reportingController: 'bench', reportingInstance: 'bench', log })
    const config = defaultConfig()
    const before = cp.readAuditEvents().filter(e => e.user.username === saUser).length
    const ours = view('ours', { labels: { 'kubernetes.io/hostname': 'ours' } })
    const oursStart = performance.now()
    await cluster.patchNode('ours', { unschedulable: true })
    const result = await drainNode({
      cluster,
      node: 'ours',
      deadline: Date.now() + 300_000,
      concurrency: config.evictionConcurrency,
      classify: pods => classifyPods({ cluster, switches: engineConfigOf(config).drain.switches }, pods, ours, 'reboot'),
      nodeReady: async () => true,
      forceDeleteOnTimeout: false,
      fence: () => true,
      backoff: { initialMs: config.evictionBackoff, maxMs: config.evictionBackoffMax },
      signal: new AbortController().signal,
      now: Date.now,
      log
    })
    const oursMs = performance.now() - oursStart
    await new Promise(resolve => setTimeout(resolve, 2000)) // the audit log is written as requests complete
    const requests = cp.readAuditEvents().filter(e => e.user.username === saUser).slice(before)
    cluster.close()
    if (result.outcome !== 'drained' || result.evicted !== podsPerNode) throw new Error(`our drain: ${JSON.stringify(result).slice(0, 300)}`)

    const theirsStart = performance.now()
    const kubectl = await cp.kubectl(['drain', 'theirs', '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=300s'], { timeoutMs: 320_000 })
    const theirsMs = performance.now() - theirsStart
    if (kubectl.code !== 0) throw new Error(`kubectl drain: ${kubectl.stderr}`)
    const byVerb: Record<string, number> = {}
    for (const e of requests) byVerb[e.verb] = (byVerb[e.verb] ?? 0) + 1
    return {
      name: `drain of a KWOK node with ${podsPerNode} pods vs kubectl drain of an identical node`,
      oursMs: Math.round(oursMs),
      kubectlMs: Math.round(theirsMs),
      evictionConcurrency: config.evictionConcurrency,
      apiRequests: requests.length,
      apiRequestsByVerb: byVerb,
      ratio: oursMs / theirsMs,
      target: '<= 0.5',
      pass: oursMs / theirsMs <= 0.5
    }
  } finally {
    await cp.stop()
  }
}
