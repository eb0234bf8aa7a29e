import t from 'tap'
import { episodeKey } from '../../src/alerts/alertmanager.ts'
import { iso } from '../../src/time.ts'
import { alert, minutes } from '../support/core.ts'
import { phaseOf, seededSim, startEngine, until } from '../support/sim.ts'

// The engine under races a hostile review found: a fleet that changes while a start waits on its
// checks, a change that arrives during a resync, a wake-up too far ahead for Node's timers.

const now = () => Date.now()
const fresh = (node: string) => alert(node, { startsAt: iso(now() - minutes(10)), fingerprint: `fp-${node}` })
const outOfService = async (sim: ReturnType<typeof seededSim>, pool: string) => (await sim.listNodes()).filter(n => n.metadata!.labels!.pool === pool && n.spec?.unschedulable === true).map(n => n.metadata!.name)

t.test('an operator\'s cordon while a start waits on its recheck: the budget is judged again before the cordon', async t => {
  const sim = seededSim()
  let release: (() => void) | undefined
  const prometheusCheck = () => new Promise<boolean>(resolve => { release = () => resolve(true) })
  const { engine } = startEngine(sim, { POOL_MAX_UNAVAILABLE: '1', VERIFY_DWELL: '1h' }, { prometheusCheck })
  t.teardown(async () => { await engine.stop(); sim.close() })
  let peak = 0
  sim.onNodeChange(() => { const out = sim.now().nodes.filter(n => n.metadata!.labels!.pool === 'app' && (n.spec?.unschedulable === true || n.status?.conditions?.some(c => c.type === 'Ready' && c.status !== 'True'))).length; peak = Math.max(peak, out) })
  const d = await engine.intake([fresh('worker-3')], 'alertmanager', false)
  t.equal(d[0]!.action, 'remediate')
  await until('the recheck is under way', () => release !== undefined)
  // Meanwhile an operator cordons another node of pool app (budget 1).
  await sim.patchNode('worker-1', { unschedulable: true })
  await new Promise(r => setImmediate(r))
  release!()
  await new Promise(r => setTimeout(r, 200))
  t.equal(peak, 1, `pool app (budget 1) never had more than 1 node out of service; peak ${peak}`)
  t.equal(await phaseOf(sim, 'worker-3'), 'pending', 'worker-3 deferred by the budget')
})

t.test('a pause set while a start waits on its recheck stops the cordon', async t => {
  const sim = seededSim()
  let release: (() => void) | undefined
  const prometheusCheck = () => new Promise<boolean>(resolve => { release = () => resolve(true) })
  const { engine } = startEngine(sim, { VERIFY_DWELL: '1h' }, { prometheusCheck })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([fresh('worker-3')], 'alertmanager', false)
  await until('the recheck is under way', () => release !== undefined)
  await engine.setPause(undefined, { reason: 'incident', by: 'alice', at: iso(now()) })
  release!()
  await new Promise(r => setTimeout(r, 300))
  t.equal(await phaseOf(sim, 'worker-3'), 'pending', 'paused before the cordon: nothing starts')
  t.notOk(sim.mutations.some(m => m.startsWith('evict')), 'no eviction while paused')
})

t.test('a node change arriving during a resync counts at once: the budget sees an operator\'s cordon', async t => {
  const sim = seededSim()
  const read = sim.readControllerState.bind(sim)
  let reading: (() => void) | undefined
  sim.readControllerState = async () => {
    const r = reading; reading = undefined; r?.()
    await new Promise(res => setTimeout(res, 300))
    return await read()
  }
  const { engine } = startEngine(sim, { RESYNC_INTERVAL: '1s', VERIFY_DWELL: '1h', RECONCILE_INTERVAL: '1h' })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.budget()
  // Wait for the periodic resync to be reading the Lease, then an operator cordons worker-1.
  const keep = setInterval(() => {}, 100)
  await new Promise<void>(res => { reading = res })
  clearInterval(keep)
  await sim.patchNode('worker-1', { unschedulable: true })
  await new Promise(r => setTimeout(r, 500))
  const app = (await engine.budget()).pools.find(p => p.pool === 'app')!
  t.comment(JSON.stringify(app.outOfService))
  t.equal(app.outOfService.others, 1, 'the engine sees the operator\'s cordon')
  const d = await engine.intake([alert('worker-3', { startsAt: iso(Date.now() - minutes(10)) })], 'alertmanager', false)
  t.comment(`${d[0]!.action} ${d[0]!.rule ?? ''}`)
  t.equal(d[0]!.rule, 'budget', 'pool app (5 nodes, 20%: budget 1) has its one node out already')
})

t.test('a pause ending more than 24.8 days ahead does not overflow Node\'s timers into a busy loop', async t => {
  const sim = seededSim()
  let overflowing = 0
  const original = globalThis.setTimeout
  globalThis.setTimeout = ((fn: () => void, ms?: number) => { if ((ms ?? 0) > 2 ** 31 - 1) overflowing++; return original(fn, ms) }) as typeof setTimeout
  process.removeAllListeners('warning')
  t.teardown(() => { globalThis.setTimeout = original })
  const { engine } = startEngine(sim, { RECONCILE_INTERVAL: '1h' })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([alert('worker-3', { startsAt: iso(Date.now() - minutes(10)) })], 'alertmanager', false)
  await engine.idle()
  await engine.setPause(undefined, { reason: 'holidays', by: 'ops', at: iso(Date.now()), until: iso(Date.now() + 40 * 24 * 3600_000) })
  const cpu = process.cpuUsage()
  await new Promise(r => original(r, 1000))
  const used = process.cpuUsage(cpu)
  t.comment(`timers armed beyond 2^31-1 ms in 1 s: ${overflowing}; cpu ${Math.round((used.user + used.system) / 1000)} ms`)
  t.ok(overflowing < 5, 'the engine does not re-arm an overflowing timer over and over')
})

t.test('a storm gone stale and redelivered node by node settles anew: nothing drains, as when it came grouped', async t => {
  const sim = seededSim()
  const startsAt = iso(Date.now() - minutes(30))
  const storm = [1, 2, 3, 4, 5].map(i => alert(`worker-${i}`, { startsAt, fingerprint: `fp-${i}` }))
  let offset = 0
  const { engine } = startEngine(sim, { ALERT_TTL: '1m', STORM_SETTLE: '500ms', BREAKER_SETTLE: '300ms', BREAKER_MIN_NODES: '2', VERIFY_DWELL: '1h' }, { now: () => Date.now() + offset })
  t.teardown(async () => { await engine.stop(); sim.close() })
  const first = await engine.intake(storm, 'alertmanager', false)
  offset += 61_000
  await engine.reconcile()
  await until('all stale and let go', async () => (await Promise.all(storm.map(a => phaseOf(sim, a.labels.node!)))).every(p => p === 'cancelled'), 3000)
  await new Promise(r => setTimeout(r, 400))
  const answers = []
  for (const a of storm) { answers.push(...await engine.intake([a], 'alertmanager', false)); await new Promise(r => setTimeout(r, 50)) }
  await new Promise(r => setTimeout(r, 300)); await engine.idle()
  const started = []
  for (const a of storm) { const s = JSON.parse((await sim.getNode(a.labels.node!))!.metadata!.annotations!['self-healing-controller.io/state']!); if (s.history.some((h: { to: string }) => h.to === 'cordoned')) started.push(a.labels.node) }
  t.same(started, [], 'a storm redelivered node by node drains nothing, as the grouped one did')
})

t.test('a silence lifted: Alertmanager\'s notification makes the node pending again, even when a sync saw the alert active first', async t => {
  const sim = seededSim()
  const a = alert('worker-3', { startsAt: iso(Date.now() - minutes(30)) })
  let state: 'active' | 'suppressed' = 'suppressed'
  const { engine } = startEngine(sim, { ALERTMANAGER_SYNC: '100ms', VERIFY_DWELL: '1h' }, { alertmanager: async () => new Map([[episodeKey(a.fingerprint, Date.parse(a.startsAt)), state]]) })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([a], 'alertmanager', false)
  await until('let go (silenced)', async () => await phaseOf(sim, 'worker-3') === 'cancelled')
  state = 'active'
  await new Promise(r => setTimeout(r, 300)) // a sync sees it active again
  const d = await engine.intake([a], 'alertmanager', false) // Alertmanager's notification after the silence ended
  t.not(d[0]!.action, 'ignored', 'the notification is news')
  const status = await engine.node('worker-3')
  t.not(status!.phase, 'cancelled', 'Alertmanager holds it active and sent it: the node is pending again, as when the webhook comes first')
})

t.test('a storm group that ends in a truncated notification leaves its pool in doubt only until the group has been quiet for ALERT_TTL', async t => {
  const sim = seededSim()
  let offset = 0
  const { engine } = startEngine(sim, { ALERT_TTL: '1m', VERIFY_DWELL: '1h', BREAKER_MIN_NODES: '3' }, { now: () => Date.now() + offset })
  t.teardown(async () => { await engine.stop(); sim.close() })
  const a = fresh('worker-1')
  await engine.intake([a], 'alertmanager', false, { truncatedAlerts: 9, groupKey: 'storm' })
  // Its last notification: everything resolved, still cut at max_alerts; the group never comes back.
  await engine.intake([{ ...a, status: 'resolved' as const, endsAt: iso(now()) }], 'alertmanager', false, { truncatedAlerts: 9, groupKey: 'storm' })
  const [held] = await engine.intake([fresh('worker-2')], 'alertmanager', false, { truncatedAlerts: 0, groupKey: 'other' })
  t.match(held, { rule: 'truncated', reason: /waiting for an untruncated notification of that group, or for the group to go quiet for ALERT_TTL/ }, 'at first, in doubt')
  // A minute later worker-2's own alert is repeated (so it still counts), the storm's group is not.
  offset += 61_000
  await engine.intake([fresh('worker-2')], 'alertmanager', false, { truncatedAlerts: 0, groupKey: 'other' })
  await engine.reconcile()
  await until('the doubt expired and worker-2 started', async () => (await phaseOf(sim, 'worker-2')) !== 'pending', 5000)
})

for (const which of ['alertmanager', 'prometheus'] as const) {
  t.test(`${which} down at the pre-drain confirmation is asked again after a while, not on every pass`, async t => {
    const sim = seededSim()
    let calls = 0
    const down = async (): Promise<never> => { calls++; throw new Error('connect ECONNREFUSED') }
    const extra = which === 'alertmanager' ? { alertmanager: down } : { prometheusCheck: down }
    const { engine } = startEngine(sim, { ALERTMANAGER_SYNC: '1h' }, extra as never)
    t.teardown(async () => { await engine.stop(); sim.close() })
    await engine.intake([fresh('worker-1')], 'alertmanager', false)
    const before = calls
    // Unrelated node churn (a label an operator sets on other nodes) while it is down.
    for (let i = 0; i < 20; i++) {
      sim.updateNode('worker-7', node => { node.spec = { ...node.spec, unschedulable: i % 2 === 0 } })
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    t.equal(await phaseOf(sim, 'worker-1'), 'pending', 'never drained without the confirmation')
    t.ok(calls - before <= 3, 'asked at most a few times within the 15 s hold')
  })
}
