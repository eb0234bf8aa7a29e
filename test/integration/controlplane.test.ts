// Proves the local control plane harness end to end: real apiserver, scheduler and
// controllers, KWOK fake nodes, the policy/v1 Eviction API with and without a PDB,
// the audit log, and RBAC for ServiceAccount tokens.
import path from 'node:path';
import t from 'tap';
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  PolicyV1Api,
  type V1Eviction,
  type V1Pod,
} from '@kubernetes/client-node';
import { binariesForTest, startControlPlane, waitFor } from '../support/controlplane.ts';

const NS = 'default';
const APP = 'web';
const NODES = ['kwok-a', 'kwok-b', 'kwok-c'];
const REPLICAS = 4;

const bins = await binariesForTest();

function evictionFor(name: string): V1Eviction {
  return { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace: NS } };
}

function podName(p: V1Pod): string {
  return p.metadata?.name ?? '';
}

/** Pods of the app that are Running and not being deleted. */
async function runningPods(core: CoreV1Api): Promise<V1Pod[]> {
  const list = await core.listNamespacedPod({ namespace: NS, labelSelector: `app=${APP}` });
  return list.items.filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp);
}

async function allPodNames(core: CoreV1Api): Promise<string[]> {
  const list = await core.listNamespacedPod({ namespace: NS, labelSelector: `app=${APP}` });
  return list.items.map(podName);
}

t.test('local control plane', { skip: bins.skip ?? false, timeout: 280_000 }, async (t) => {
  const t0 = Date.now();
  const cp = await startControlPlane({ binDir: bins.binDir });
  t.comment(`started in ${Date.now() - t0} ms at ${cp.server}`);
  t.teardown(async () => {
    const t1 = Date.now();
    await cp.stop();
    t.comment(`stopped in ${Date.now() - t1} ms`);
  });

  const kc = cp.kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const policy = kc.makeApiClient(PolicyV1Api);

  await t.test('kubectl reaches the apiserver and both report a real version', async (t) => {
    const res = await cp.kubectl(['version', '-o', 'json']);
    t.equal(res.code, 0, res.stderr);
    const v = JSON.parse(res.stdout) as { clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string } };
    t.match(v.serverVersion.gitVersion, /^v1\.\d+\.\d+$/);
    t.equal(v.clientVersion.gitVersion, v.serverVersion.gitVersion);
  });

  await t.test('fake nodes become Ready, untainted, with ~110 pods allocatable', async (t) => {
    const nodes = await cp.createFakeNodes(NODES.map((name) => ({
      name,
      labels: { 'topology.kubernetes.io/zone': 'zone-1' },
      providerID: `aws:///us-east-1a/i-${name}`,
    })));
    t.same(nodes.map((n) => n.metadata?.name), NODES);
    for (const n of nodes) {
      t.equal(n.metadata?.annotations?.['kwok.x-k8s.io/node'], 'fake');
      t.equal(n.status?.allocatable?.pods, '110');
      t.equal(n.spec?.providerID, `aws:///us-east-1a/i-${n.metadata?.name}`);
      t.equal(n.metadata?.labels?.['topology.kubernetes.io/zone'], 'zone-1');
    }
    // Re-read later: a node lifecycle controller would have tainted them by now.
    await new Promise((r) => setTimeout(r, 2_000));
    const list = await core.listNode();
    t.same(list.items.flatMap((n) => n.spec?.taints ?? []), [], 'no node is tainted');
  });

  let pods: V1Pod[] = [];
  await t.test('a Deployment is scheduled and Running on the fake nodes', async (t) => {
    await apps.createNamespacedDeployment({
      namespace: NS,
      body: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: APP },
        spec: {
          replicas: REPLICAS,
          selector: { matchLabels: { app: APP } },
          template: {
            metadata: { labels: { app: APP } },
            // KWOK never pulls or runs the image.
            spec: { containers: [{ name: APP, image: 'registry.invalid/web:1' }] },
          },
        },
      },
    });
    pods = await waitFor(`${REPLICAS} Running pods`, async () => {
      const running = await runningPods(core);
      return running.length === REPLICAS ? running : undefined;
    }, { timeoutMs: 60_000 });
    for (const p of pods) t.ok(NODES.includes(p.spec?.nodeName ?? ''), `${podName(p)} on ${p.spec?.nodeName}`);
  });

  const victim = podName(pods[0] ?? {});
  await t.test('eviction deletes a pod and the ReplicaSet replaces it', async (t) => {
    t.not(victim, '', 'have a pod to evict');
    await core.createNamespacedPodEviction({ name: victim, namespace: NS, body: evictionFor(victim) });
    const before = new Set(pods.map(podName));
    const after = await waitFor('the victim gone and a replacement Running', async () => {
      const [names, running] = await Promise.all([allPodNames(core), runningPods(core)]);
      return !names.includes(victim) && running.length === REPLICAS ? running : undefined;
    }, { timeoutMs: 60_000 });
    t.ok(after.some((p) => !before.has(podName(p))), 'a new pod took the evicted one\'s place');
  });

  await t.test('a PDB allowing no disruption makes eviction fail with 429', async (t) => {
    await policy.createNamespacedPodDisruptionBudget({
      namespace: NS,
      body: {
        apiVersion: 'policy/v1',
        kind: 'PodDisruptionBudget',
        metadata: { name: APP },
        spec: { maxUnavailable: 0, selector: { matchLabels: { app: APP } } },
      },
    });
    // The disruption controller must have processed it, or the 429 would only mean
    // "still being processed" rather than "budget exhausted".
    const pdb = await waitFor('the disruption controller to observe the PDB', async () => {
      const p = await policy.readNamespacedPodDisruptionBudget({ name: APP, namespace: NS });
      const observed = (p.status?.observedGeneration ?? 0) >= (p.metadata?.generation ?? 1);
      return observed && p.status?.expectedPods === REPLICAS ? p : undefined;
    }, { timeoutMs: 30_000 });
    t.equal(pdb.status?.disruptionsAllowed, 0);

    const target = podName((await runningPods(core))[0] ?? {});
    const err: unknown = await core
      .createNamespacedPodEviction({ name: target, namespace: NS, body: evictionFor(target) })
      .then(() => undefined, (e: unknown) => e);
    t.ok(err instanceof ApiException, 'eviction was refused');
    if (err instanceof ApiException) {
      t.equal(err.code, 429);
      t.match(String(err.body), /disruption budget/);
    }
    const stillThere = await core.readNamespacedPod({ name: target, namespace: NS });
    t.notOk(stillThere.metadata?.deletionTimestamp, 'the pod was not deleted');
  });

  await t.test('the audit log records both eviction requests', async (t) => {
    const evictions = await waitFor('eviction events in the audit log', () => {
      const events = cp.readAuditEvents().filter((e) => e.objectRef?.subresource === 'eviction');
      return events.length >= 2 ? events : undefined;
    }, { timeoutMs: 10_000 });
    const ok = evictions.find((e) => e.objectRef?.name === victim);
    t.equal(ok?.verb, 'create');
    t.equal(ok?.objectRef?.resource, 'pods');
    t.equal(ok?.user.username, 'shc-admin');
    const code = ok?.responseStatus?.code ?? 0;
    t.ok(code >= 200 && code < 300, `success code ${code}`);
    t.ok(evictions.some((e) => e.responseStatus?.code === 429), 'the refused eviction is there with 429');
  });

  await t.test('a ServiceAccount token kubeconfig is subject to RBAC', async (t) => {
    t.equal((await cp.kubectl(['create', 'serviceaccount', 'reader'])).code, 0);
    const token = await cp.kubectl(['create', 'token', 'reader', '--duration=10m']);
    t.equal(token.code, 0, token.stderr);
    const kubeconfig = cp.kubeconfigForToken(token.stdout.trim(), path.join(cp.dir, 'reader.kubeconfig'));
    const who = await cp.kubectl(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'], { kubeconfig });
    t.equal(who.stdout, 'system:serviceaccount:default:reader', who.stderr);
    const denied = await cp.kubectl(['get', 'pods'], { kubeconfig });
    t.not(denied.code, 0, 'listing pods without a RoleBinding fails');
    t.match(denied.stderr, /forbidden/i);
  });
});
