import { CoordinationV1Api, EventsV1Api, Watch } from '@kubernetes/client-node'
import t from 'tap'
import { binariesForTest, waitFor } from '../support/controlplane.ts'
import type { ControllerProcess } from '../support/controller.ts'
import { notification, startScenario, type Scenario } from '../support/scenario.ts'

/**
 * Operators stay in charge, on a real control plane with two replicas: a pause set through either
 * replica (or written on the Lease with kubectl) holds every new start, survives both replicas,
 * ends by itself at its expiry; the phase shows as a node label kubectl can select on. A maintenance
 * window closed now defers a new start and says when it opens.
 */
const bins = await binariesForTest()

const adminToken = 'integration-admin-token'
const namespace = 'self-healing-controller'
const pausesKey = 'self-healing-controller.io/pauses'
const phaseLabel = 'self-healing-controller.io/phase'
// Slots for every scenario at once: a failed node (PROVIDER=none) keeps its slot until uncordoned.
const env = { ADMIN_TOKEN: adminToken, MAX_CONCURRENT_DRAINS: '4' }

const pause = (replica: ControllerProcess, scope: string, body: object) => replica.request('PUT', `/v1/pause/${scope}`, { body, token: adminToken })
const unpause = (replica: ControllerProcess, scope: string) => replica.request('DELETE', `/v1/pause/${scope}`, { token: adminToken })
const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

/** The replicas, told apart once the Lease names its holder. */
async function roles (s: Scenario, replicas: readonly ControllerProcess[]) {
  const holder = await waitFor('a leader', async () => { const h = await s.leaseHolder(); return replicas.some(r => r.name === h) && h }, { timeoutMs: 20_000 })
  return { leader: replicas.find(r => r.name === holder)!, follower: replicas.find(r => r.name !== holder)! }
}

/** The pauses a replica holds in memory, as its /metrics shows them (a reading at most 500 ms old). */
async function pausesInMemory (replica: ControllerProcess): Promise<string[]> {
  const text = await fetch(`${replica.url}/metrics`).then(r => r.text())
  return [...text.matchAll(/^shc_pause_active\{scope="([^"]+)"\} 1$/gm)].map(m => m[1]!)
}

async function leaseAnnotations (s: Scenario): Promise<Record<string, string>> {
  const lease = await s.cp.kubeConfig().makeApiClient(CoordinationV1Api).readNamespacedLease({ name: 'self-healing-controller', namespace })
  return lease.metadata?.annotations ?? {}
}

const eventsIn = async (s: Scenario, ns: string) => (await s.cp.kubeConfig().makeApiClient(EventsV1Api).listNamespacedEvent({ namespace: ns })).items

/** Every value the node's phase label takes, in order, from a watch (no change is missed between polls). */
async function watchPhaseLabel (s: Scenario, node: string) {
  const seen: Array<string | undefined> = []
  let last: string | null | undefined = null
  const controller = await new Watch(s.cp.kubeConfig()).watch('/api/v1/nodes', { fieldSelector: `metadata.name=${node}` }, (type, object) => {
    if (type !== 'ADDED' && type !== 'MODIFIED') return
    const value = object.metadata?.labels?.[phaseLabel]
    if (value !== last) seen.push(value)
    last = value
  }, () => {})
  return { seen, stop: () => controller.abort() }
}

t.test('operators stay in charge, on a real cluster with two replicas', { skip: bins.skip ?? false, timeout: 300_000 }, async t => {
  const s = await startScenario(bins.binDir!)
  t.teardown(() => s.stop())
  const frozen = await s.nodes('frozen', 6)
  const expiring = await s.nodes('expiring', 6)
  const labelled = await s.nodes('labelled', 6)
  const annotated = await s.nodes('annotated', 6)
  let replicas = [await s.controller('replica-a', env), await s.controller('replica-b', env)]

  await t.test('a pause set through the follower is obeyed by the leader within a second', async t => {
    const { leader, follower } = await roles(s, replicas)
    // A pending node the budget holds already (an operator cordoned another node of the pool): how
    // the leader shows it tells what the leader holds in memory, and no start makes it read afresh.
    await s.cp.kubectl(['cordon', frozen[5]!])
    t.match((await leader.post('/v1/alerts', notification([frozen[0]!]))).body.decisions, [{ action: 'deferred', rule: 'budget' }])
    const set = await pause(follower, 'pool/frozen', { reason: 'db migration', by: 'alice' })
    const setAt = Date.now()
    t.equal(set.status, 200)
    t.match(set.body.pauses, [{ scope: 'pool', pool: 'frozen', reason: 'db migration', by: 'alice' }])
    // Right after the 200, a new alert of the pool is deferred by the pause.
    const answer = await follower.post('/v1/alerts', notification([frozen[1]!]))
    t.match(answer.body.decisions, [{ node: frozen[1], action: 'deferred', rule: 'paused', reason: /paused for pool frozen by alice at .*: db migration/ }])
    // The leader learns it from the Lease it renews, within one retry period (500 ms here).
    await waitFor('the leader to hold the pause in memory', async () => (await leader.get(`/v1/nodes/${frozen[0]}`)).body.deferred?.rule === 'paused', { timeoutMs: 1000 })
    t.ok(Date.now() - setAt <= 1000, `the leader knew after ${Date.now() - setAt} ms`)
    // The operator gives the cordoned node back: only the pause holds the pool now.
    await s.cp.kubectl(['uncordon', frozen[5]!])
    await waitFor('both records to show the pause', async () => {
      const states = await Promise.all([s.state(frozen[0]!), s.state(frozen[1]!)])
      return states.every(state => state?.deferred?.rule === 'paused')
    }, { timeoutMs: 10_000 })
    t.match((await s.state(frozen[0]!)).deferred, { rule: 'paused', scope: 'pool=frozen', reason: /db migration/ })
    await sleep(3000)
    t.same(await s.cordoned(frozen), [], 'nothing cordoned')
    t.same([await s.phase(frozen[0]!), await s.phase(frozen[1]!)], ['pending', 'pending'])
    t.match(JSON.parse((await leaseAnnotations(s))[pausesKey]!), { 'pool/frozen': { reason: 'db migration', by: 'alice' } }, 'kept on the Lease')
  })

  await t.test('the pause survives killing both replicas; lifted, the node is remediated', async t => {
    for (const replica of replicas) await replica.kill('SIGKILL')
    replicas = [await s.controller('replica-c', env), await s.controller('replica-d', env)]
    const { leader, follower } = await roles(s, replicas)
    const listed = await follower.get('/v1/pause')
    t.equal(listed.status, 200)
    t.match(listed.body.pauses, [{ scope: 'pool', pool: 'frozen', reason: 'db migration', by: 'alice' }], 'still paused after the restart')
    // Long enough for the new leader to recover the records and run its passes.
    await waitFor('the new leader to recover', async () => /recovered state from the cluster/.test(leader.logs()), { timeoutMs: 10_000 })
    await sleep(3000)
    t.same([await s.phase(frozen[0]!), await s.phase(frozen[1]!)], ['pending', 'pending'], 'the pending nodes stay pending')
    t.same(await s.cordoned(frozen), [])
    t.match((await leader.get(`/v1/nodes/${frozen[0]}`)).body.deferred, { rule: 'paused' })

    const lifted = await unpause(follower, 'pool/frozen')
    t.equal(lifted.status, 200)
    t.same(lifted.body.pauses, [])
    // One at a time, as the budget allows: the first drained node keeps its slot (PROVIDER=none).
    const remediated = await waitFor('a node to be remediated once the pause is lifted', async () => {
      const phases = await Promise.all([s.phase(frozen[0]!), s.phase(frozen[1]!)])
      return phases.includes('failed') && frozen[phases.indexOf('failed')]!
    }, { timeoutMs: 30_000 })
    t.equal((await s.state(remediated)).outcome, 'not-performed', 'PROVIDER=none: drained, left cordoned')
    const other = remediated === frozen[0] ? frozen[1]! : frozen[0]!
    await waitFor('the other node to wait for the budget', async () => (await s.state(other))?.deferred?.rule === 'budget', { timeoutMs: 10_000 })
    t.same(await s.cordoned(frozen), [remediated])
    t.equal((await leaseAnnotations(s))[pausesKey], undefined, 'the annotation is gone from the Lease')
    const reasons = (await eventsIn(s, namespace)).filter(e => e.regarding?.kind === 'Lease').map(e => e.reason)
    t.ok(reasons.includes('RemediationPaused') && reasons.includes('RemediationUnpaused'), `the Lease's Events tell the story (${reasons})`)
  })

  await t.test('an expired pause ends by itself, with an Event', async t => {
    const { follower } = await roles(s, replicas)
    const until = new Date(Date.now() + 3000).toISOString()
    t.equal((await pause(follower, 'pool/expiring', { reason: 'short freeze', until })).status, 200)
    const answer = await follower.post('/v1/alerts', notification([expiring[0]!]))
    t.match(answer.body.decisions, [{ action: 'deferred', rule: 'paused', reason: new RegExp(`until ${until}: short freeze`) }])
    await waitFor('the node to start after the expiry', async () => await s.phase(expiring[0]!) !== 'pending', { timeoutMs: 20_000, intervalMs: 100 })
    const cordonedAt = Date.parse((await s.state(expiring[0]!)).history.find((h: { to: string }) => h.to === 'cordoned').at)
    t.ok(cordonedAt >= Date.parse(until), `cordoned at ${new Date(cordonedAt).toISOString()}, not before the expiry ${until}`)
    const expired = await waitFor('the RemediationPauseExpired Event', async () =>
      (await eventsIn(s, namespace)).find(e => e.reason === 'RemediationPauseExpired'), { timeoutMs: 10_000 })
    t.match(expired, { type: 'Normal', regarding: { kind: 'Lease', name: 'self-healing-controller', namespace }, note: /pool\/expiring reached its expiry/ })
    t.equal((await leaseAnnotations(s))[pausesKey], undefined, 'the expired pause is gone from the Lease')
    t.same((await follower.get('/v1/pause')).body.pauses, [])
    await waitFor('the node to end', async () => await s.phase(expiring[0]!) === 'failed', { timeoutMs: 30_000 })
  })

  await t.test('the phase label follows the phases, kubectl selects on it, a pause holds a drained node at its safe point', async t => {
    const { follower } = await roles(s, replicas)
    await s.deploy('pay', 'labelled', 2, { minAvailable: 2 })
    const victim = (await s.pods('pay'))[0]!.spec!.nodeName!
    const watch = await watchPhaseLabel(s, victim)
    t.teardown(watch.stop)
    await follower.post('/v1/alerts', notification([victim]))
    await waitFor('the drain to be held by the PodDisruptionBudget', async () => await s.phase(victim) === 'draining', { timeoutMs: 30_000 })
    const selected = await s.core.listNode({ labelSelector: `${phaseLabel}=draining` })
    t.same(selected.items.map(n => n.metadata!.name), [victim], 'the label selector finds the draining node')
    const byKubectl = await s.cp.kubectl(['get', 'nodes', '-l', `${phaseLabel}=draining`, '-o', 'name'])
    t.equal(byKubectl.stdout.trim(), `node/${victim}`, 'kubectl get nodes -l …=draining')
    const column = await s.cp.kubectl(['get', 'nodes', '-L', phaseLabel, '--no-headers', victim])
    t.match(column.stdout, new RegExp(`^${victim}\\s.*\\sdraining\\s*$`, 'm'), 'kubectl get nodes -L … shows the phase as a column')

    // Paused mid-drain: the drain finishes, no provider step starts.
    t.equal((await pause(follower, 'pool/labelled', { reason: 'watching it', by: 'bob' })).status, 200)
    await s.relax('pay')
    await waitFor('the drain to finish and the node to wait', async () => await s.phase(victim) === 'remediating', { timeoutMs: 30_000 })
    const held = await waitFor('the RemediationHeld Event', async () =>
      (await eventsIn(s, 'default')).find(e => e.regarding?.name === victim && e.reason === 'RemediationHeld'), { timeoutMs: 10_000 })
    t.match(held.note, /^drained; the \w+ waits until the pause ends \(paused for pool labelled by bob at .*: watching it\)$/)
    await sleep(3000)
    t.equal(await s.phase(victim), 'remediating', 'held at the safe point while paused')
    t.equal((await s.node(victim)).metadata?.labels?.[phaseLabel], 'remediating')
    t.equal((await unpause(follower, 'pool/labelled')).status, 200)
    await waitFor('the held node to go on once the pause is lifted', async () => await s.phase(victim) === 'failed', { timeoutMs: 30_000 })

    // The operator takes the failed node back: the record is cancelled and the label goes.
    await s.cp.kubectl(['uncordon', victim])
    await waitFor('released', async () => await s.phase(victim) === 'cancelled', { timeoutMs: 20_000 })
    await waitFor('the label gone', async () => (await s.node(victim)).metadata?.labels?.[phaseLabel] === undefined, { timeoutMs: 5000 })
    await sleep(500)
    watch.stop()
    const history = (await s.state(victim)).history.map((h: { to: string }) => h.to)
    t.same(history, ['pending', 'cordoned', 'draining', 'remediating', 'failed', 'cancelled'])
    t.same(watch.seen, [undefined, 'pending', 'cordoned', 'draining', 'remediating', 'failed', undefined], 'the label took every phase in turn and went at the end')
    // Fleet-wide: the label is the phase wherever a remediation is under way or waits, and only there.
    for (const node of (await s.core.listNode()).items) {
      const phase = node.metadata?.annotations?.[phaseLabel]
      const expected = phase === undefined || phase === 'healthy' || phase === 'cancelled' ? undefined : phase
      t.equal(node.metadata?.labels?.[phaseLabel], expected, `${node.metadata!.name} (${phase ?? 'never tracked'})`)
    }
  })

  await t.test('a pause written by hand on the Lease with kubectl annotate is obeyed, and lifted the same way', async t => {
    const { leader } = await roles(s, replicas)
    const annotate = await s.cp.kubectl(['annotate', 'lease', 'self-healing-controller', '-n', namespace, '--overwrite', `${pausesKey}={"cluster":{"reason":"freeze"}}`])
    t.equal(annotate.code, 0, annotate.stderr)
    await waitFor('the leader to hold the pause in memory', async () => (await pausesInMemory(leader)).includes('cluster'), { timeoutMs: 3000 })
    t.match((await leader.get('/v1/pause')).body.pauses, [{ scope: 'cluster', reason: 'freeze', by: 'unknown' }])
    const answer = await leader.post('/v1/alerts', notification([annotated[0]!]))
    t.match(answer.body.decisions, [{ action: 'deferred', rule: 'paused', reason: /paused cluster-wide by unknown.*: freeze/ }])
    await sleep(3000)
    t.same(await s.cordoned(annotated), [], 'nothing cordoned')
    t.match((await s.state(annotated[0]!)).deferred, { rule: 'paused', scope: 'cluster' })

    const lift = await s.cp.kubectl(['annotate', 'lease', 'self-healing-controller', '-n', namespace, `${pausesKey}-`])
    t.equal(lift.code, 0, lift.stderr)
    await waitFor('the node to be remediated once the annotation is gone', async () => await s.phase(annotated[0]!) === 'failed', { timeoutMs: 30_000 })
  })
})

/** A one-hour UTC window opening two hours from `now` (to the minute): closed now, opening at a known instant. */
function windowOpeningInTwoHours (now: number) {
  const opens = new Date(Math.floor((now + 2 * 3_600_000) / 60_000) * 60_000)
  const closes = new Date(opens.getTime() + 3_600_000)
  const clock = (at: Date) => at.toISOString().slice(11, 16)
  const day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][opens.getUTCDay()]
  // Near midnight the end falls on the next day, before the start: the grammar reads that as running past midnight.
  return { spec: `${day} ${clock(opens)}-${clock(closes)} UTC`, opens: opens.toISOString() }
}

t.test('a maintenance window closed now defers a new start with its next opening, on a real cluster', { skip: bins.skip ?? false, timeout: 120_000 }, async t => {
  const s = await startScenario(bins.binDir!)
  t.teardown(() => s.stop())
  const nodes = await s.nodes('windowed', 3)
  const { spec, opens } = windowOpeningInTwoHours(Date.now())
  const controller = await s.controller('windowed', { ...env, REMEDIATION_WINDOWS: spec })
  await waitFor('the controller to lead', async () => await s.leaseHolder() === controller.name, { timeoutMs: 20_000 })

  const answer = await controller.post('/v1/alerts', notification([nodes[0]!]))
  t.match(answer.body.decisions, [{ node: nodes[0], action: 'deferred', rule: 'window', reason: `outside the maintenance windows (REMEDIATION_WINDOWS ${spec}); next opening ${opens}` }])
  await waitFor('the record to show the window', async () => (await s.state(nodes[0]!))?.deferred?.rule === 'window', { timeoutMs: 10_000 })
  t.match((await s.state(nodes[0]!)).deferred, { rule: 'window', reason: new RegExp(`next opening ${opens}$`) })
  await sleep(3000)
  t.same(await s.cordoned(nodes), [], 'nothing cordoned while the window is closed')
  t.equal(await s.phase(nodes[0]!), 'pending')
  const listed = await controller.get('/v1/pause')
  t.equal(listed.status, 200)
  t.same(listed.body.windows, { spec, open: false, nextOpening: opens })
})
