import t from 'tap'
import { iso } from '../../src/time.ts'
import { ProviderError } from '../../src/providers/provider.ts'
import { alert, minutes } from '../support/core.ts'
import { phaseOf, prefix, seededSim, startEngine, until } from '../support/sim.ts'

const now = () => Date.now()
const fresh = (node: string, extra: Parameters<typeof alert>[1] = {}) => alert(node, { startsAt: iso(now() - minutes(10)), ...extra })
const stateOf = async (sim: ReturnType<typeof seededSim>, node: string) => JSON.parse((await sim.getNode(node))!.metadata!.annotations![`${prefix}/state`]!)

t.test('a firing alert cordons, drains, calls the provider and cools the node down', async t => {
  const sim = seededSim()
  const { engine, metrics, simProvider } = startEngine(sim)
  t.teardown(async () => { await engine.stop(); sim.close() })
  const decisions = await engine.intake([fresh('worker-3')], 'alertmanager', false)
  t.equal(decisions[0]!.action, 'remediate')
  await engine.idle()
  const node = (await sim.getNode('worker-3'))!
  const state = await stateOf(sim, 'worker-3')
  t.equal(state.phase, 'cooldown')
  t.same(state.history.map((h: { to: string }) => h.to), ['pending', 'cordoned', 'draining', 'remediating', 'cooldown'])
  t.equal(node.spec!.unschedulable, false, 'replaced in place: back in service')
  t.not(node.spec!.providerID, 'sim:///zone-a/machine-3', 'new machine')
  t.same(simProvider.actions, [{ node: 'worker-3', action: 'replace' }])
  const left = (await sim.listPodsOnNode('worker-3')).map(p => p.metadata!.name).sort()
  t.same(left, ['kube-proxy-worker-3', 'node-exporter-worker-3', 'report-29031'], 'only DaemonSet, mirror and finished pods stay')
  t.ok(sim.pods().filter(p => p.metadata!.name!.startsWith('web-r')).length === 2, 'web pods recreated elsewhere')
  t.same(sim.events.filter(e => e.node === 'worker-3').map(e => e.event.reason),
    ['RemediationPending', 'RemediationCordoned', 'RemediationDraining', 'RemediationRemediating', 'RemediationCooldown'])
  const text = await metrics.registry.metrics()
  t.match(text, /shc_transitions_total\{from="draining",to="remediating"\} 1/)
  t.match(text, /shc_provider_calls_total\{provider="sim",action="replace",result="ok"\} 1/)
})

t.test('a reboot returns the node to service; a replacement elsewhere leaves it cordoned', async t => {
  const sim = seededSim()
  const provider = { name: 'elsewhere', remediate: async () => ({ detail: 'terminated in its group' }) }
  const { engine } = startEngine(sim, { PROVIDER_ACTION: 'replace' }, { provider })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([fresh('worker-1', { labels: { remediation: 'reboot' } })], 'alertmanager', false)
  await engine.idle()
  t.equal((await sim.getNode('worker-1'))!.spec!.unschedulable, false)
  await engine.intake([fresh('worker-6')], 'alertmanager', false)
  await engine.idle()
  t.equal(await phaseOf(sim, 'worker-6'), 'cooldown')
  t.equal((await sim.getNode('worker-6'))!.spec!.unschedulable, true, 'same machine id after replace: keep it out of service')
})

t.test('a rebooted node stays cordoned until it is Ready on a new boot, then returns to service', async t => {
  const sim = seededSim()
  let calls = 0
  const provider = { name: 'slow-boot', remediate: async () => { calls++; return { detail: 'reboot issued', rebooted: true } } }
  const first = startEngine(sim, {}, { provider })
  t.teardown(() => sim.close())
  await first.engine.intake([fresh('worker-1', { labels: { remediation: 'reboot' } })], 'alertmanager', false)
  await until('worker-1 rebooting', async () => await phaseOf(sim, 'worker-1') === 'rebooting')
  const waiting = await stateOf(sim, 'worker-1')
  t.match(waiting.reason, /reboot issued; waiting until .* for the node to be Ready on a new boot/)
  await new Promise(resolve => setTimeout(resolve, 200))
  t.equal(await phaseOf(sim, 'worker-1'), 'rebooting', 'still waiting while the boot has not changed')
  t.equal((await sim.getNode('worker-1'))!.spec!.unschedulable, true, 'kept out of service meanwhile')

  // A restart while waiting resumes the wait with the same deadline and does not reboot again.
  await first.engine.stop()
  const second = startEngine(sim, {}, { provider })
  t.teardown(() => second.engine.stop())
  sim.rebootNode('worker-1', 50)
  await until('worker-1 cooling down', async () => await phaseOf(sim, 'worker-1') === 'cooldown')
  const state = await stateOf(sim, 'worker-1')
  t.equal(state.rebootDeadline, waiting.rebootDeadline, 'deadline kept across the restart')
  t.match(state.reason, /node Ready again on a new boot \(worker-1-boot-/)
  t.same(state.history.map((h: { to: string }) => h.to).slice(-3), ['remediating', 'rebooting', 'cooldown'])
  t.equal((await sim.getNode('worker-1'))!.spec!.unschedulable, false, 'back in service')
  t.equal(calls, 1, 'the machine was rebooted once')
  t.ok(sim.events.some(e => e.node === 'worker-1' && e.event.reason === 'RemediationRebooting'), 'the wait is announced')
})

t.test('the simulated provider reboots: the node is down for a moment and comes back on a new boot', async t => {
  const sim = seededSim()
  const { engine, simProvider } = startEngine(sim)
  t.teardown(async () => { await engine.stop(); sim.close() })
  const bootBefore = (await sim.getNode('worker-2'))!.status!.nodeInfo!.bootID
  await engine.intake([fresh('worker-2', { labels: { remediation: 'reboot' } })], 'alertmanager', false)
  await until('worker-2 cooling down', async () => await phaseOf(sim, 'worker-2') === 'cooldown')
  const node = (await sim.getNode('worker-2'))!
  t.not(node.status!.nodeInfo!.bootID, bootBefore)
  t.equal(node.spec!.unschedulable, false)
  t.same(simProvider.actions, [{ node: 'worker-2', action: 'reboot' }])
})

t.test('a rebooted node that is not back by REBOOT_TIMEOUT fails and stays cordoned', async t => {
  const sim = seededSim()
  const provider = { name: 'never-back', remediate: async () => ({ detail: 'reboot issued', rebooted: true }) }
  const { engine } = startEngine(sim, { REBOOT_TIMEOUT: '300ms' }, { provider })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([fresh('worker-1', { labels: { remediation: 'reboot' } })], 'alertmanager', false)
  await until('worker-1 failed', async () => await phaseOf(sim, 'worker-1') === 'failed')
  const state = await stateOf(sim, 'worker-1')
  t.equal(state.outcome, 'reboot-timeout')
  t.match(state.reason, /node not Ready on a new boot by .*; left cordoned/)
  t.equal((await sim.getNode('worker-1'))!.spec!.unschedulable, true)
  t.equal(sim.events.at(-1)!.event.type, 'Warning')
})

t.test('an operator\'s uncordon during the reboot wait is respected: cancelled, never re-cordoned', async t => {
  const sim = seededSim()
  const provider = { name: 'slow-boot', remediate: async () => ({ detail: 'reboot issued', rebooted: true }) }
  const { engine } = startEngine(sim, {}, { provider })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([fresh('worker-1', { labels: { remediation: 'reboot' } })], 'alertmanager', false)
  await until('worker-1 rebooting', async () => await phaseOf(sim, 'worker-1') === 'rebooting')
  await sim.patchNode('worker-1', { unschedulable: false })
  await until('worker-1 cancelled', async () => await phaseOf(sim, 'worker-1') === 'cancelled')
  t.equal((await stateOf(sim, 'worker-1')).outcome, 'operator-uncordoned')
  sim.rebootNode('worker-1', 10)
  await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(await phaseOf(sim, 'worker-1'), 'cancelled')
  t.equal((await sim.getNode('worker-1'))!.spec!.unschedulable, false)
})

t.test('a PodDisruptionBudget that allows nothing ends the drain at its deadline, nothing force-deleted', async t => {
  const sim = seededSim({ retryAfterMs: 50 })
  sim.addPod({ metadata: { name: 'pay-1', namespace: 'default', labels: { app: 'pay' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'pay', uid: 'pay' }] }, spec: { nodeName: 'worker-3', containers: [] }, status: { phase: 'Running' } })
  sim.addReplicaSet('default', 'pay', 1)
  sim.addPodDisruptionBudget({ metadata: { name: 'pay', namespace: 'default' }, spec: { minAvailable: 1, selector: { matchLabels: { app: 'pay' } } } })
  const { engine, metrics } = startEngine(sim, { DRAIN_TIMEOUT: '1s', PROVIDER: 'sim' })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([fresh('worker-3')], 'alertmanager', false)
  await engine.idle()
  const state = await stateOf(sim, 'worker-3')
  t.equal(state.phase, 'failed')
  t.equal(state.outcome, 'drain-timeout')
  t.match(state.reason, /1 pods left \(default\/pay-1\); nothing was force-deleted/)
  t.equal((await sim.getNode('worker-3'))!.spec!.unschedulable, true, 'left cordoned for an operator')
  t.notOk(sim.mutations.some(m => m.startsWith('delete pod')), 'no pod deleted')
  t.ok(sim.mutations.filter(m => m === 'evict pod default/pay-1').length >= 3, 'evictions retried')
  t.notOk(sim.pods().some(p => p.spec?.nodeName === 'worker-3' && p.metadata!.name!.startsWith('web-')), 'pods without a blocking budget were evicted')
  t.equal(sim.events.at(-1)!.event.type, 'Warning')
  t.match(await metrics.registry.metrics(), /shc_evictions_total\{result="blocked"\} [1-9]/)

  const next = await engine.intake([fresh('worker-6')], 'alertmanager', false)
  t.equal(next[0]!.rule, 'semaphore', 'a failed node keeps its slot until an operator looks at it')
})

t.test('FORCE_DELETE_ON_TIMEOUT deletes what is left at the deadline', async t => {
  const sim = seededSim()
  const { engine } = startEngine(sim, { DRAIN_TIMEOUT: '300ms', FORCE_DELETE_ON_TIMEOUT: 'true' })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([fresh('worker-10')], 'alertmanager', false)
  await engine.idle()
  t.ok(sim.mutations.includes('delete pod default/legacy-0'))
  const state = await stateOf(sim, 'worker-10')
  t.equal(state.phase, 'cooldown')
  t.match(state.history.find((h: { to: string }) => h.to === 'remediating').reason, /force-deleted as configured/)
})

t.test('restart mid-drain: the new engine resumes with the same deadline and the semaphore holds', async t => {
  const sim = seededSim({ terminationDelayMs: 400 })
  const first = startEngine(sim, { DRAIN_TIMEOUT: '10s' })
  await first.engine.intake([fresh('worker-3')], 'alertmanager', false)
  await until('draining', async () => await phaseOf(sim, 'worker-3') === 'draining')
  const deadline = (await stateOf(sim, 'worker-3')).drainDeadline
  await first.engine.stop()
  t.equal(await phaseOf(sim, 'worker-3'), 'draining', 'stopping does not finish or undo anything')

  const second = startEngine(sim, { DRAIN_TIMEOUT: '10s' })
  t.teardown(async () => { await second.engine.stop(); sim.close() })
  const other = await second.engine.intake([fresh('worker-6')], 'alertmanager', false)
  t.equal(other[0]!.action, 'deferred', 'the slot is still taken after the restart')
  t.equal(other[0]!.rule, 'semaphore')
  await until('worker-3 cooled down', async () => await phaseOf(sim, 'worker-3') === 'cooldown')
  t.equal((await stateOf(sim, 'worker-3')).drainDeadline, deadline, 'deadline kept')
  await until('worker-6 started after worker-3 finished', async () => await phaseOf(sim, 'worker-6') === 'cooldown')
})

t.test('an operator\'s uncordon mid-drain is respected: cancelled, never re-cordoned', async t => {
  const sim = seededSim({ terminationDelayMs: 5000 })
  const { engine } = startEngine(sim, { DRAIN_TIMEOUT: '30s' })
  t.teardown(async () => { await engine.stop(); sim.close() })
  const a = fresh('worker-3')
  await engine.intake([a], 'alertmanager', false)
  await until('draining', async () => await phaseOf(sim, 'worker-3') === 'draining')
  await sim.patchNode('worker-3', { unschedulable: false })
  await until('cancelled', async () => await phaseOf(sim, 'worker-3') === 'cancelled')
  const state = await stateOf(sim, 'worker-3')
  t.match(state.reason, /made schedulable by someone else/)
  t.ok(state.cooldownUntil)
  const replay = await engine.intake([a], 'alertmanager', false)
  t.match(replay[0]!.reason, /duplicate/)
  const refire = await engine.intake([fresh('worker-3', { startsAt: iso(now() - minutes(3)) })], 'alertmanager', false)
  t.equal(refire[0]!.rule, 'cooldown', 'a new episode waits for the cooldown')
  await engine.reconcile()
  t.equal((await sim.getNode('worker-3'))!.spec!.unschedulable, false, 'not re-cordoned')
})

t.test('resolved before its turn: the pending node is released', async t => {
  const sim = seededSim({ terminationDelayMs: 5000 })
  const { engine } = startEngine(sim, { DRAIN_TIMEOUT: '30s' })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([fresh('worker-3')], 'alertmanager', false)
  const waiting = fresh('worker-6')
  t.equal((await engine.intake([waiting], 'alertmanager', false))[0]!.action, 'deferred')
  const resolved = await engine.intake([{ ...waiting, status: 'resolved', endsAt: iso(now()) }], 'alertmanager', false)
  t.equal(resolved[0]!.action, 'cancelled')
  t.equal(await phaseOf(sim, 'worker-6'), 'cancelled')
  t.equal((await sim.getNode('worker-6'))!.spec!.unschedulable, undefined, 'never touched')
})

t.test('dry-run decides and reports but mutates nothing', async t => {
  const sim = seededSim()
  const { engine } = startEngine(sim, { DRY_RUN: 'true' })
  t.teardown(async () => { await engine.stop(); sim.close() })
  const decisions = await engine.intake([fresh('worker-3'), fresh('worker-6'), fresh('worker-99')], 'alertmanager', false)
  t.same(decisions.map(d => d.action), ['remediate', 'deferred', 'ignored'])
  await engine.reconcile()
  await engine.idle()
  t.same(sim.mutations, [])
  t.same(sim.events, [])
})

t.test('an alert storm over a pool: the breaker opens and nothing beyond the semaphore is cordoned', async t => {
  const sim = seededSim()
  let maxCordoned = 0
  sim.onNodeChange(async () => {
    const cordoned = (await sim.listNodes()).filter(n => n.spec?.unschedulable === true).length
    maxCordoned = Math.max(maxCordoned, cordoned)
  })
  const { engine, metrics } = startEngine(sim, { MAX_CONCURRENT_DRAINS: '1' })
  t.teardown(async () => { await engine.stop(); sim.close() })
  const decisions = await engine.intake([1, 2, 3, 4, 5].map(i => fresh(`worker-${i}`)), 'alertmanager', false)
  t.ok(decisions.every(d => d.action === 'deferred' && d.rule === 'circuit-breaker'), 'every node of the pool deferred by the breaker')
  await engine.reconcile()
  await engine.idle()
  t.equal(maxCordoned, 0)
  t.match(await metrics.registry.metrics(), /shc_circuit_breaker_open\{scope="pool=app"\} 1/)
  const elsewhere = await engine.intake([fresh('worker-6')], 'alertmanager', false)
  t.equal(elsewhere[0]!.action, 'remediate', 'the other pool still heals')
})

t.test('recheck with Prometheus: not firing there cancels; unreachable defers without draining', async t => {
  const sim = seededSim()
  let answer: boolean | Error = new Error('connect ECONNREFUSED 127.0.0.1:9090')
  const prometheusCheck = async () => { if (answer instanceof Error) throw answer; return answer }
  const { engine } = startEngine(sim, {}, { prometheusCheck })
  t.teardown(async () => { await engine.stop(); sim.close() })
  const decision = await engine.intake([fresh('worker-3')], 'alertmanager', false)
  t.equal(decision[0]!.action, 'remediate')
  await engine.idle()
  const held = await stateOf(sim, 'worker-3')
  t.equal(held.phase, 'pending')
  t.equal(held.deferred.rule, 'recheck')
  t.match(held.deferred.reason, /ECONNREFUSED.*not draining/)
  t.equal((await sim.getNode('worker-3'))!.spec!.unschedulable, undefined)
  answer = false
  await engine.reconcile()
  t.equal(await phaseOf(sim, 'worker-3'), 'cancelled')
  answer = true
  await engine.intake([fresh('worker-6', { startsAt: iso(now() - minutes(4)) })], 'alertmanager', false)
  await engine.idle()
  t.equal(await phaseOf(sim, 'worker-6'), 'cooldown', 'confirmed by Prometheus: drained')
})

t.test('a provider failure leaves the node cordoned and failed, with the reason', async t => {
  const sim = seededSim()
  const provider = { name: 'broken', remediate: async () => { throw new ProviderError('instance i-123 not in an Auto Scaling group; refusing to shrink capacity', { retryable: false }) } }
  const { engine, metrics } = startEngine(sim, {}, { provider })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([fresh('worker-3')], 'alertmanager', false)
  await engine.idle()
  const state = await stateOf(sim, 'worker-3')
  t.equal(state.phase, 'failed')
  t.equal(state.outcome, 'provider-failed')
  t.match(state.reason, /provider broken could not replace the machine: instance i-123 not in an Auto Scaling group/)
  t.equal((await sim.getNode('worker-3'))!.spec!.unschedulable, true)
  t.match(await metrics.registry.metrics(), /shc_provider_calls_total\{provider="broken",action="replace",result="error"\} 1/)
  await sim.patchNode('worker-3', { unschedulable: false })
  await until('released by the operator', async () => await phaseOf(sim, 'worker-3') === 'cancelled')
})

t.test('an unreachable cluster makes intake fail as unavailable, deciding nothing', async t => {
  const sim = seededSim()
  const { engine } = startEngine(sim)
  t.teardown(async () => { await engine.stop(); sim.close() })
  sim.setReachable(false)
  await t.rejects(engine.intake([fresh('worker-3')], 'alertmanager', false), { name: 'ClusterError', message: /unreachable/ })
  sim.setReachable(true)
  t.equal(await phaseOf(sim, 'worker-3'), undefined)
})

t.test('an unreadable state annotation is never acted on', async t => {
  const sim = seededSim()
  await sim.patchNode('worker-3', { annotations: { [`${prefix}/state`]: '{not json' } })
  const { engine } = startEngine(sim)
  t.teardown(async () => { await engine.stop(); sim.close() })
  const decisions = await engine.intake([fresh('worker-3')], 'alertmanager', false)
  t.match(decisions[0]!.reason, /unreadable state annotation/)
  const listed = await engine.nodes()
  t.equal(listed.find(n => n.name === 'worker-3')?.reason, 'state annotation is not JSON: ' + (() => { try { JSON.parse('{not json') } catch (e) { return (e as Error).message } })())
})
