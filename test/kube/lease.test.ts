import { CoreV1Api } from '@kubernetes/client-node'
import { pino } from 'pino'
import t from 'tap'
import { startLeaderElection, type Elector } from '../../src/kube/lease.ts'
import { binariesForTest, startControlPlane, waitFor } from '../support/controlplane.ts'

const bins = await binariesForTest()
const timings = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 250 }

t.test('leader election on a Lease', { skip: bins.skip ?? false, timeout: 120_000 }, async t => {
  const cp = await startControlPlane({ binDir: bins.binDir })
  t.teardown(() => cp.stop())
  const kubeConfig = cp.kubeConfig()
  await kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'shc' } } })
  const log = pino({ level: 'silent' })
  const history: string[] = []
  const electors = new Map<string, Elector>()
  const candidate = (identity: string) => {
    const elector = startLeaderElection({
      kubeConfig, namespace: 'shc', name: 'self-healing-controller', identity, log, ...timings,
      onStartedLeading: () => { history.push(`${identity} started`) },
      onStoppedLeading: () => { history.push(`${identity} stopped`) }
    })
    electors.set(identity, elector)
    return elector
  }
  t.teardown(async () => { for (const e of electors.values()) await e.stop() })

  const a = candidate('replica-a')
  await waitFor('replica-a to lead', () => a.isLeader(), { timeoutMs: 10_000 })
  const b = candidate('replica-b')
  await new Promise(resolve => setTimeout(resolve, timings.leaseDurationMs + 500))
  t.ok(a.isLeader(), 'the holder keeps renewing')
  t.notOk(b.isLeader(), 'the other replica waits while the lease is renewed')

  const lease = await cp.kubectl(['get', 'lease', '-n', 'shc', 'self-healing-controller', '-o', 'jsonpath={.spec.holderIdentity}'])
  t.equal(lease.stdout, 'replica-a', 'the Lease names the holder')

  await a.stop()
  await waitFor('replica-b to take over after a hand-back', () => b.isLeader(), { timeoutMs: 5_000 })
  t.same(history, ['replica-a started', 'replica-a stopped', 'replica-b started'], 'the old leader stopped acting before the new one started')

  // Someone else takes the lease: the holder stops acting at its next renewal, not at its deadline.
  t.ok(b.leaseValid(), 'a fresh renewal: the lease is certainly held')
  const takenAt = Date.now()
  const taken = await cp.kubectl(['patch', 'lease', '-n', 'shc', 'self-healing-controller', '--type=merge', '-p', JSON.stringify({ spec: { holderIdentity: 'intruder', renewTime: new Date().toISOString().replace('Z', '000Z'), leaseDurationSeconds: 3 } })])
  t.equal(taken.code, 0, taken.stderr)
  await waitFor('replica-b to see the other holder', () => !b.isLeader(), { timeoutMs: 5_000 })
  t.ok(Date.now() - takenAt < timings.renewDeadlineMs, 'stepped down at once, well before its renew deadline')
  t.notOk(b.leaseValid(), 'and no longer claims the lease')
  await waitFor('replica-b to lead again once the intruder\'s lease expired', () => b.isLeader(), { timeoutMs: 10_000 })

  // The API server goes away: the leader must stop acting within the renew deadline.
  const lostAt = Date.now()
  await cp.stop()
  await waitFor('replica-b to step down', () => !b.isLeader(), { timeoutMs: timings.leaseDurationMs + 2000 })
  t.ok(Date.now() - lostAt < timings.leaseDurationMs, 'stepped down before the lease could expire for anyone else')
  t.equal(history.at(-1), 'replica-b stopped')
  t.same(history.slice(3, 5), ['replica-b stopped', 'replica-b started'], 'the takeover was a stop, then a start')
})
