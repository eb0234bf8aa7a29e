import t from 'tap'
import { episodeKey } from '../../src/alerts/alertmanager.ts'
import { ClusterError } from '../../src/cluster.ts'
import { ProviderError, type Provider } from '../../src/providers/provider.ts'
import { noneProvider } from '../../src/providers/none.ts'
import { decodeFleetState } from '../../src/remediation/fleet-state.ts'
import { simNodeInfo } from '../../src/sim/topology.ts'
import { iso } from '../../src/time.ts'
import { alert, minutes } from '../support/core.ts'
import { phaseOf, prefix, seededSim, startEngine, until } from '../support/sim.ts'

const now = () => Date.now()
const fresh = (node: string, extra: Parameters<typeof alert>[1] = {}) => alert(node, { startsAt: iso(now() - minutes(10)), ...extra })
const stateOf = async (sim: ReturnType<typeof seededSim>, node: string) => JSON.parse((await sim.getNode(node))!.metadata!.annotations![`${prefix}/state`]!)
const phasesOf = async (sim: ReturnType<typeof seededSim>, node: string) => (await stateOf(sim, node)).history.map((h: { to: string }) => h.to)
const departedOf = async (sim: ReturnType<typeof seededSim>) => decodeFleetState((await sim.readControllerState()).annotations, '', prefix).departed
/** A cloud that replaces the machine elsewhere: the node stays until the cloud removes it. */
const replacedElsewhere: Provider = { name: 'cloud', remediate: async () => ({ detail: 'terminated in its group', outcome: 'replacing' }) }

t.test('a firing alert cordons, drains, reboots (the ladder\'s first rung), verifies and cools the node down', async t => {
  const sim = seededSim()
  const { engine, metrics, simProvider } = startEngine(sim)
  t.teardown(async () => { await engine.stop(); sim.close() })
  const bootBefore = (await sim.getNode('worker-3'))!.status!.nodeInfo!.bootID
  const decisions = await engine.intake([fresh('worker-3')], 'alertmanager', false)
  t.equal(decisions[0]!.action, 'remediate')
  await until('worker-3 cooling down', async () => await phaseOf(sim, 'worker-3') === 'cooldown')
  const node = (await sim.getNode('worker-3'))!
  const state = await stateOf(sim, 'worker-3')
  t.same(state.history.map((h: { to: string }) => h.to), ['pending', 'cordoned', 'draining', 'remediating', 'rebooting', 'verifying', 'cooldown'])
  t.equal(state.uid, 'sim-node-3', 'the record belongs to this Node object')
  t.equal(node.spec!.unschedulable, false, 'back in service')
  t.not(node.status!.nodeInfo!.bootID, bootBefore, 'on a new boot')
  t.same(simProvider.actions, [{ node: 'worker-3', action: 'reboot' }])
  const left = (await sim.listPodsOnNode('worker-3')).map(p => p.metadata!.name).sort()
  t.same(left, ['kube-proxy-worker-3', 'node-exporter-worker-3', 'report-29031'], 'only DaemonSet, mirror and finished pods stay')
  t.same(sim.events.filter(e => e.node === 'worker-3').map(e => e.event.reason),
    ['RemediationPending', 'RemediationCordoned', 'RemediationDraining', 'RemediationRemediating', 'RemediationRebooting', 'RemediationVerifying', 'RemediationCooldown'])
  const text = await metrics.registry.metrics()
  t.match(text, /shc_transitions_total\{from="verifying",to="cooldown"\} 1/)
  t.match(text, /shc_provider_calls_total\{provider="sim",action="reboot",result="ok"\} 1/)
  t.match(text, /shc_drains_in_flight 0/, 'the proven fix freed the slot')
})

t.test('an explicit replace label means replace; the sim swaps the machine in place and waits for its new boot', async t => {
  const sim = seededSim()
  const { engine, simProvider } = startEngine(sim)
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([fresh('worker-1', { labels: { remediation: 'replace' } })], 'alertmanager', false)
  await until('worker-1 cooling down', async () => await phaseOf(sim, 'worker-1') === 'cooldown')
  t.same(simProvider.actions, [{ node: 'worker-1', action: 'replace' }])
  t.not((await sim.getNode('worker-1'))!.spec!.providerID, 'sim:///zone-a/machine-1', 'new machine')
  t.same((await phasesOf(sim, 'worker-1')).slice(-3), ['rebooting', 'verifying', 'cooldown'])
})

t.test('PROVIDER=none: a drained node is never counted as fixed; it holds its slot, so a pool cannot be emptied one alert at a time', async t => {
  const sim = seededSim()
  const { engine, metrics } = startEngine(sim, { MAX_CONCURRENT_DRAINS: '1' }, { provider: noneProvider })
  t.teardown(async () => { await engine.stop(); sim.close() })
  const cordoned = async () => (await sim.listNodes()).filter(n => n.spec?.unschedulable === true).map(n => n.metadata!.name!)
  for (const i of [1, 2, 3, 4, 5]) {
    const a = fresh(`worker-${i}`)
    await engine.intake([a], 'alertmanager', false)
    await engine.idle()
    await engine.intake([{ ...a, status: 'resolved', endsAt: iso(now()) }], 'alertmanager', false)
    await engine.idle()
  }
  t.same(await cordoned(), ['worker-1'], 'five sequential alert/resolve cycles: one node held by us')
  const state = await stateOf(sim, 'worker-1')
  t.equal(state.phase, 'failed')
  t.equal(state.outcome, 'not-performed')
  t.match(state.reason, /requested action 'reboot' was not performed.*stays cordoned for an operator/)
  t.match(await metrics.registry.metrics(), /shc_drains_in_flight 1/)
  const next = await engine.intake([fresh('worker-7')], 'alertmanager', false)
  t.equal(next[0]!.rule, 'semaphore', 'the held node keeps its slot')
  await sim.patchNode('worker-1', { unschedulable: false })
  await until('released by the operator', async () => await phaseOf(sim, 'worker-1') === 'cancelled')
  await until('worker-7 takes the freed slot', async () => (await phaseOf(sim, 'worker-7')) === 'failed')
})

t.test('replaced elsewhere: held cordoned until the cloud removes it, then the slot stays held until the pool is whole again', async t => {
  const sim = seededSim()
  const { engine } = startEngine(sim, { MAX_CONCURRENT_DRAINS: '1', VERIFY_DWELL: '300ms' }, { provider: replacedElsewhere })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([fresh('worker-6', { labels: { remediation: 'replace' } })], 'alertmanager', false)
  await until('worker-6 replacing', async () => await phaseOf(sim, 'worker-6') === 'replacing')
  t.equal((await sim.getNode('worker-6'))!.spec!.unschedulable, true, 'kept out of service')
  t.match((await stateOf(sim, 'worker-6')).reason, /held cordoned until the cloud removes the node/)

  sim.removeNode('worker-6')
  await until('the departure is recorded', async () => (await departedOf(sim)).has('worker-6'))
  const entry = (await departedOf(sim)).get('worker-6')!
  t.match(entry, { pool: 'data', zone: 'zone-b', expected: 5 })
  const waiting = await engine.intake([fresh('worker-1')], 'alertmanager', false)
  t.equal(waiting[0]!.rule, 'semaphore', 'the departed node still holds its slot')
  t.match((await engine.budget()).pools.find(p => p.pool === 'data')!.outOfService.causes, { 'departed (replaced, replacement not proven yet)': 1 })

  sim.addNode({
    metadata: { name: 'worker-11', uid: 'sim-node-11', labels: { pool: 'data', 'topology.kubernetes.io/zone': 'zone-b' }, annotations: {}, creationTimestamp: new Date() },
    spec: { providerID: 'sim:///zone-b/machine-11' },
    status: { conditions: [{ type: 'Ready', status: 'True' }], nodeInfo: simNodeInfo('boot-11') }
  })
  await until('the pool is whole again and proven', async () => !(await departedOf(sim)).has('worker-6'))
  await until('worker-1 starts on the freed slot', async () => (await phaseOf(sim, 'worker-1')) !== 'pending')
})

t.test('a node the cloud never removes fails at REPLACE_TIMEOUT and stays cordoned', async t => {
  const sim = seededSim()
  const { engine } = startEngine(sim, { REPLACE_TIMEOUT: '300ms' }, { provider: replacedElsewhere })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([fresh('worker-6', { labels: { remediation: 'replace' } })], 'alertmanager', false)
  await until('worker-6 failed', async () => await phaseOf(sim, 'worker-6') === 'failed')
  const state = await stateOf(sim, 'worker-6')
  t.equal(state.outcome, 'replace-timeout')
  t.equal((await sim.getNode('worker-6'))!.spec!.unschedulable, true)
})

t.test('a re-fire while the fix is being verified climbs the ladder: reboot, then replace, then quarantine', async t => {
  const sim = seededSim()
  const { engine, simProvider, metrics } = startEngine(sim, { VERIFY_DWELL: '1h' })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([fresh('worker-2', { startsAt: iso(now() - minutes(30)) })], 'alertmanager', false)
  await until('worker-2 verifying', async () => await phaseOf(sim, 'worker-2') === 'verifying')
  const refire = await engine.intake([fresh('worker-2', { startsAt: iso(now() - minutes(3)) })], 'alertmanager', false)
  t.match(refire[0]!.reason, /re-fired while the fix was being verified/)
  await until('worker-2 verifying again', async () => (await stateOf(sim, 'worker-2')).remediations.length === 2 && await phaseOf(sim, 'worker-2') === 'verifying')
  t.same(simProvider.actions.map(a => a.action), ['reboot', 'replace'], 'the second rung replaces')
  await engine.intake([fresh('worker-2', { startsAt: iso(now() - minutes(2)) })], 'alertmanager', false)
  await until('worker-2 quarantined', async () => await phaseOf(sim, 'worker-2') === 'quarantined')
  const state = await stateOf(sim, 'worker-2')
  t.match(state.reason, /quarantined: remediated 2 times within LADDER_WINDOW and still alerting/)
  t.equal((await sim.getNode('worker-2'))!.spec!.unschedulable, true, 'held cordoned')
  t.equal(simProvider.actions.length, 2, 'no provider call for the quarantine')
  t.equal(sim.events.at(-1)!.event.type, 'Warning')
  t.match(await metrics.registry.metrics(), /shc_nodes\{phase="quarantined"\} 1/)
})

t.test('an explicit reboot label reboots every time; the ladder applies to remediation="drain" only', async t => {
  const sim = seededSim()
  const { engine, simProvider } = startEngine(sim, { VERIFY_DWELL: '1h' })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([fresh('worker-2', { labels: { remediation: 'reboot' }, startsAt: iso(now() - minutes(30)) })], 'alertmanager', false)
  await until('worker-2 verifying', async () => await phaseOf(sim, 'worker-2') === 'verifying')
  await engine.intake([fresh('worker-2', { labels: { remediation: 'reboot' }, startsAt: iso(now() - minutes(3)) })], 'alertmanager', false)
  await until('second reboot done', async () => (await stateOf(sim, 'worker-2')).remediations.length === 2 && await phaseOf(sim, 'worker-2') === 'verifying')
  t.same(simProvider.actions.map(a => a.action), ['reboot', 'reboot'])
})

t.test('other controllers first: a node already out of service is never started, and the reason names why', async t => {
  const sim = seededSim()
  const { engine } = startEngine(sim)
  t.teardown(async () => { await engine.stop(); sim.close() })
  await sim.patchNode('worker-2', { unschedulable: true })
  sim.updateNode('worker-7', n => { n.spec = { ...n.spec, taints: [{ key: 'karpenter.sh/disrupted', effect: 'NoSchedule' }] } })
  sim.updateNode('worker-8', n => { n.status = { ...n.status, conditions: [{ type: 'Ready', status: 'Unknown' }] } })
  await new Promise(resolve => setImmediate(resolve))
  const decisions = await engine.intake([fresh('worker-2'), fresh('worker-7'), fresh('worker-8')], 'alertmanager', false)
  t.same(decisions.map(d => d.rule), ['disrupted-elsewhere', 'disrupted-elsewhere', 'disrupted-elsewhere'])
  t.match(decisions[0]!.reason, /already out of service: cordoned/)
  t.match(decisions[1]!.reason, /tainted karpenter.sh\/disrupted \(Karpenter\)/)
  t.match(decisions[2]!.reason, /not Ready/)
  await engine.idle()
  t.equal((await stateOf(sim, 'worker-7')).deferred.rule, 'disrupted-elsewhere', 'recorded on the node')
  t.match(sim.events.find(e => e.node === 'worker-7' && e.event.reason === 'RemediationDeferred')!.event.note, /Karpenter/)
})

t.test('the pool budget counts others\' disruptions: an operator-cordoned node leaves no room in a pool of 5 at 20%', async t => {
  const sim = seededSim()
  const { engine, metrics } = startEngine(sim, { MAX_CONCURRENT_DRAINS: '3' })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await sim.patchNode('worker-1', { unschedulable: true })
  await new Promise(resolve => setImmediate(resolve))
  const decisions = await engine.intake([fresh('worker-4')], 'alertmanager', false)
  t.equal(decisions[0]!.rule, 'budget')
  t.match(decisions[0]!.reason, /pool app has no disruption budget left \(POOL_MAX_UNAVAILABLE 20%\)/)
  t.same(decisions[0]!.detail, { size: 5, outOfService: 1, ours: 0, others: 1, budget: 1 })
  const budget = await engine.budget()
  t.match(budget.pools.find(p => p.pool === 'app'), { size: 5, budget: 1, outOfService: { ours: 0, others: 1, causes: { cordoned: 1 } } })
  t.match(await metrics.registry.metrics(), /shc_budget_exhausted\{pool="app"\} 1/)
  const other = await engine.intake([fresh('worker-6')], 'alertmanager', false)
  t.equal(other[0]!.action, 'remediate', 'the other pool has room')
})

t.test('a storm delivered one notification per node: nothing drains, whatever the arrival order', async t => {
  const sim = seededSim()
  const { engine } = startEngine(sim, { MAX_CONCURRENT_DRAINS: '2', STORM_SETTLE: '500ms', BREAKER_MIN_NODES: '2' })
  t.teardown(async () => { await engine.stop(); sim.close() })
  const decisions = []
  for (const i of [1, 6, 2, 7, 3, 8, 4, 9, 5, 10]) {
    decisions.push(...await engine.intake([fresh(`worker-${i}`)], 'alertmanager', false))
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  t.ok(decisions.every(d => d.action === 'deferred'), `every answer defers (${decisions.map(d => d.rule)})`)
  await new Promise(resolve => setTimeout(resolve, 800))
  await engine.idle()
  t.same((await sim.listNodes()).filter(n => n.spec?.unschedulable === true).map(n => n.metadata!.name), [], 'no node cordoned')
  t.equal((await stateOf(sim, 'worker-1')).deferred.rule, 'circuit-breaker')
})

t.test('two replicas: the follower records, the leader acts, and both answer a storm the same way', async t => {
  const sim = seededSim()
  let holder: 'a' | 'b' = 'a'
  const a = startEngine(sim, { STORM_SETTLE: '300ms' }, { startAsLeader: true, leaseValid: () => holder === 'a' })
  const b = startEngine(sim, { STORM_SETTLE: '300ms' }, { startAsLeader: false, leaseValid: () => holder === 'b' })
  t.teardown(async () => { await a.engine.stop(); await b.engine.stop(); sim.close() })
  const viaFollower = await b.engine.intake([1, 2, 3].map(i => fresh(`worker-${i}`)), 'alertmanager', false)
  await new Promise(resolve => setImmediate(resolve))
  const viaLeader = await a.engine.intake([1, 2, 3].map(i => fresh(`worker-${i}`)), 'alertmanager', false)
  t.same(viaFollower.map(d => d.rule), viaLeader.map(d => d.rule), `the same answer from either replica (${viaLeader.map(d => d.rule)})`)
  await new Promise(resolve => setTimeout(resolve, 500))
  await a.engine.idle()
  t.same((await sim.listNodes()).filter(n => n.spec?.unschedulable === true), [], 'the breaker holds them on the leader too')
  t.notOk(sim.events.some(e => e.event.reason === 'RemediationCordoned'))
  holder = 'b'
  void a.engine.setLeader(false)
  await b.engine.setLeader(true)
  const single = await b.engine.intake([fresh('worker-7')], 'alertmanager', false)
  t.equal(single[0]!.rule, 'storm-settle', 'a new alerting node restarts the settle time')
})

t.test('a demoted leader makes no write: a start waiting on its recheck is fenced when the lease is lost', async t => {
  const sim = seededSim()
  let valid = true
  let release: (() => void) | undefined
  const prometheusCheck = () => new Promise<boolean>(resolve => { release = () => resolve(true) })
  const { engine } = startEngine(sim, {}, { prometheusCheck, leaseValid: () => valid })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([fresh('worker-3')], 'alertmanager', false)
  await until('the recheck is under way', () => release !== undefined)
  valid = false
  const before = sim.mutations.length
  release!()
  await engine.idle()
  t.same(sim.mutations.slice(before), [], 'no write after the lease was lost')
  t.equal(await phaseOf(sim, 'worker-3'), 'pending')
})

t.test('a PodDisruptionBudget that allows nothing ends the drain at its deadline, nothing force-deleted', async t => {
  const sim = seededSim({ retryAfterMs: 50 })
  sim.addPod({ metadata: { name: 'pay-1', namespace: 'default', labels: { app: 'pay' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'pay', uid: 'pay', controller: true }] }, spec: { nodeName: 'worker-3', containers: [] }, status: { phase: 'Running' } })
  sim.addReplicaSet('default', 'pay', 1)
  sim.addPodDisruptionBudget({ metadata: { name: 'pay', namespace: 'default' }, spec: { minAvailable: 1, selector: { matchLabels: { app: 'pay' } } } })
  const { engine, metrics } = startEngine(sim, { DRAIN_TIMEOUT: '1s' })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([fresh('worker-3')], 'alertmanager', false)
  await until('worker-3 failed', async () => await phaseOf(sim, 'worker-3') === 'failed')
  const state = await stateOf(sim, 'worker-3')
  t.equal(state.outcome, 'drain-timeout')
  t.match(state.reason, /1 pods left \(default\/pay-1\); nothing was force-deleted/)
  t.equal((await sim.getNode('worker-3'))!.spec!.unschedulable, true, 'left cordoned for an operator')
  t.notOk(sim.mutations.some(m => m.startsWith('delete pod')), 'no pod deleted')
  t.ok(sim.mutations.filter(m => m === 'evict pod default/pay-1').length >= 3, 'evictions retried')
  t.equal(sim.events.at(-1)!.event.type, 'Warning')
  t.match(await metrics.registry.metrics(), /shc_evictions_total\{result="blocked"\} [1-9]/)
  const next = await engine.intake([fresh('worker-6')], 'alertmanager', false)
  t.equal(next[0]!.rule, 'semaphore', 'a failed node keeps its slot until an operator looks at it')
})

t.test('restart mid-drain: the new engine resumes with the same deadline and the slot holds', async t => {
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
  t.equal(other[0]!.rule, 'semaphore', 'the slot is still taken after the restart')
  await until('worker-3 cooled down', async () => await phaseOf(sim, 'worker-3') === 'cooldown', 10_000)
  t.equal((await stateOf(sim, 'worker-3')).drainDeadline, deadline, 'deadline kept')
  await until('worker-6 started after worker-3 finished', async () => await phaseOf(sim, 'worker-6') === 'cooldown', 10_000)
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

t.test('recheck with Prometheus: not firing there cancels; unreachable defers without draining', async t => {
  const sim = seededSim()
  let answer: boolean | Error = new Error('connect ECONNREFUSED 127.0.0.1:9090')
  const prometheusCheck = async () => { if (answer instanceof Error) throw answer; return answer }
  const { engine, metrics } = startEngine(sim, {}, { prometheusCheck })
  t.teardown(async () => { await engine.stop(); sim.close() })
  const decision = await engine.intake([fresh('worker-3')], 'alertmanager', false)
  t.equal(decision[0]!.action, 'remediate')
  await until('held by the recheck', async () => (await stateOf(sim, 'worker-3')).deferred?.rule === 'recheck')
  const held = await stateOf(sim, 'worker-3')
  t.equal(held.phase, 'pending')
  t.match(held.deferred.reason, /ECONNREFUSED.*not draining/)
  t.equal((await sim.getNode('worker-3'))!.spec!.unschedulable, undefined)
  t.match(await metrics.registry.metrics(), /shc_source_up\{source="prometheus"\} 0/)
  answer = false
  await engine.reconcile()
  await until('cancelled', async () => await phaseOf(sim, 'worker-3') === 'cancelled')
  answer = true
  await engine.intake([fresh('worker-6', { startsAt: iso(now() - minutes(4)) })], 'alertmanager', false)
  await until('confirmed by Prometheus: drained', async () => await phaseOf(sim, 'worker-6') === 'cooldown')
})

t.test('a provider failure leaves the node cordoned and failed, with the reason', async t => {
  const sim = seededSim()
  const provider = { name: 'broken', remediate: async () => { throw new ProviderError('instance i-123 not in an Auto Scaling group; refusing to shrink capacity', { retryable: false }) } }
  const { engine, metrics } = startEngine(sim, {}, { provider })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([fresh('worker-3', { labels: { remediation: 'replace' } })], 'alertmanager', false)
  await until('worker-3 failed', async () => await phaseOf(sim, 'worker-3') === 'failed')
  const state = await stateOf(sim, 'worker-3')
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
  await engine.nodes()
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
  t.match(listed.find(n => n.name === 'worker-3')?.reason, /^state annotation is not JSON: /)
})

t.test('a record written for another Node object of the same name is history, not state', async t => {
  const sim = seededSim()
  const old = { uid: 'an-earlier-worker-3', phase: 'pending', since: iso(now() - minutes(5)), reason: 'alert firing', alerts: [], firings: [], remediations: [], history: [] }
  await sim.patchNode('worker-3', { annotations: { [`${prefix}/state`]: JSON.stringify(old) } })
  const { engine } = startEngine(sim)
  t.teardown(async () => { await engine.stop(); sim.close() })
  const status = await engine.node('worker-3')
  t.equal(status!.phase, 'healthy', 'the old episode is not this node\'s')
  const decisions = await engine.intake([fresh('worker-3')], 'alertmanager', false)
  t.equal(decisions[0]!.action, 'remediate', 'a new alert starts afresh')
  await until('worker-3 cooled down', async () => await phaseOf(sim, 'worker-3') === 'cooldown')
  t.equal((await stateOf(sim, 'worker-3')).uid, 'sim-node-3')
})

t.test('a node carrying pods a drain would lose is not cordoned at all; the answer, the record and an Event list them', async t => {
  const sim = seededSim()
  const { engine, metrics } = startEngine(sim)
  t.teardown(async () => { await engine.stop(); sim.close() })
  const decisions = await engine.intake([fresh('worker-5')], 'alertmanager', false)
  t.match(decisions, [{ action: 'deferred', rule: 'protected-pods' }])
  const reason = decisions[0]!.reason
  t.match(reason, /3 pods cannot be evicted safely, so the node is not cordoned/)
  t.match(reason, /default\/scratch-shell: no controller/)
  t.match(reason, /default\/cache-0: emptyDir data would be lost \(scratch\)/)
  t.match(reason, /default\/batch-7: karpenter.sh\/do-not-disrupt: "true"/)
  await engine.idle()
  t.equal((await sim.getNode('worker-5'))!.spec!.unschedulable, undefined, 'never cordoned')
  t.equal((await stateOf(sim, 'worker-5')).deferred.rule, 'protected-pods')
  t.match(sim.events.find(e => e.node === 'worker-5' && e.event.reason === 'RemediationDeferred')!.event.note, /scratch-shell/)
  t.match(await metrics.registry.metrics(), /shc_policy_blocked_total\{rule="protected-pods"\} [1-9]/)
  const status = await engine.node('worker-5')
  t.match(status!.deferred, { rule: 'protected-pods', detail: { pods: 3 } })
})

t.test('each switch allows only what it names; an opt-out annotation only its removal', async t => {
  const sim = seededSim()
  const { engine } = startEngine(sim, { EVICT_UNMANAGED_PODS: 'true', DELETE_EMPTYDIR_DATA: 'true' })
  t.teardown(async () => { await engine.stop(); sim.close() })
  const decisions = await engine.intake([fresh('worker-5')], 'alertmanager', false)
  t.match(decisions, [{ rule: 'protected-pods', reason: /1 pod cannot be evicted safely.*batch-7: karpenter.sh\/do-not-disrupt/ }])
  const batch = sim.pods().find(p => p.metadata!.name === 'batch-7')!
  sim.addPod({ ...batch, metadata: { ...batch.metadata, annotations: {} } })
  await engine.reconcile()
  await until('worker-5 cooling down', async () => await phaseOf(sim, 'worker-5') === 'cooldown')
  for (const name of ['scratch-shell', 'cache-0', 'batch-7']) t.ok(sim.mutations.includes(`evict pod default/${name}`), `${name} evicted once allowed`)
})

t.test('data on a local volume: the node may be rebooted, never replaced unless ALLOW_LOCAL_DATA_LOSS', async t => {
  const sim = seededSim()
  const { engine } = startEngine(sim)
  t.teardown(async () => { await engine.stop(); sim.close() })
  const replacing = fresh('worker-9', { labels: { remediation: 'replace' } })
  const replace = await engine.intake([replacing], 'alertmanager', false)
  t.match(replace, [{ rule: 'protected-pods', reason: /pg-0: data on this machine \(data \(PersistentVolume local-pg-0\)\) would be destroyed by replace; a reboot keeps it/ }])
  const reboot = await engine.intake([fresh('worker-9', { fingerprint: 'other', labels: { alertname: 'Other', remediation: 'reboot' } })], 'alertmanager', false)
  t.equal(reboot[0]!.action, 'deferred', 'the strongest alert, replace, still drives the node')
  await engine.intake([{ ...replacing, status: 'resolved', endsAt: iso(now()) }], 'alertmanager', false)
  await engine.reconcile()
  await until('rebooted and verified', async () => await phaseOf(sim, 'worker-9') === 'cooldown')
  t.ok(sim.mutations.includes('evict pod default/pg-0'), 'evicted for the reboot')
  const allowed = startEngine(seededSim(), { ALLOW_LOCAL_DATA_LOSS: 'true' })
  t.teardown(() => allowed.engine.stop())
  const replaced = await allowed.engine.intake([fresh('worker-9', { labels: { remediation: 'replace' } })], 'alertmanager', false)
  t.equal(replaced[0]!.action, 'remediate')
})

t.test('an operator\'s veto annotation holds a node, with its reason and until when', async t => {
  const sim = seededSim()
  const { engine } = startEngine(sim)
  t.teardown(async () => { await engine.stop(); sim.close() })
  await sim.patchNode('worker-3', { annotations: { [`${prefix}/veto`]: 'disk swap by hand, ticket OPS-42', [`${prefix}/veto-until`]: iso(now() + 200) } })
  await new Promise(resolve => setImmediate(resolve))
  const decisions = await engine.intake([fresh('worker-3')], 'alertmanager', false)
  t.match(decisions, [{ rule: 'veto', reason: /vetoed until .*: disk swap by hand, ticket OPS-42/ }])
  t.match(await engine.node('worker-3'), { veto: { reason: 'disk swap by hand, ticket OPS-42' } })
  await until('the veto expired and the node was started', async () => await phaseOf(sim, 'worker-3') === 'cooldown')
})

t.test('no room for the pods elsewhere: deferred with the shortfall in numbers; CAPACITY_CHECK=false turns it off', async t => {
  const sim = seededSim()
  sim.addPod({ metadata: { name: 'huge-0', namespace: 'default', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'huge', uid: 'h', controller: true }] }, spec: { nodeName: 'worker-1', containers: [{ name: 'c', resources: { requests: { cpu: '12', memory: '1Gi' } } }] }, status: { phase: 'Running' } })
  sim.addReplicaSet('default', 'huge', 1)
  const { engine } = startEngine(sim)
  t.teardown(async () => { await engine.stop(); sim.close() })
  const decisions = await engine.intake([fresh('worker-1')], 'alertmanager', false)
  t.match(decisions, [{ rule: 'capacity', reason: /do not fit on the remaining schedulable, Ready nodes/, detail: { pods: 1, cpu: 12, first: 'default/huge-0' } }])
  const off = startEngine(sim, { CAPACITY_CHECK: 'false' })
  t.teardown(() => off.engine.stop())
  t.equal((await off.engine.intake([fresh('worker-1', { fingerprint: 'x' })], 'alertmanager', false))[0]!.rule, undefined)
})

t.test('Alertmanager as the source of truth: a silence stops a pending node; unreachable, no drain starts', async t => {
  const sim = seededSim()
  let view: Map<string, 'active' | 'suppressed'> | Error = new Error('connect ECONNREFUSED 127.0.0.1:9093')
  const alertmanager = async () => { if (view instanceof Error) throw view; return view }
  const { engine, metrics } = startEngine(sim, { ALERTMANAGER_SYNC: '1h' }, { alertmanager })
  t.teardown(async () => { await engine.stop(); sim.close() })
  const a = fresh('worker-3')
  await engine.intake([a], 'alertmanager', false)
  await until('held by the recheck', async () => (await stateOf(sim, 'worker-3')).deferred?.rule === 'recheck')
  t.match((await stateOf(sim, 'worker-3')).deferred.reason, /cannot confirm the alert with Alertmanager \(connect ECONNREFUSED.*not draining/)
  t.equal((await sim.getNode('worker-3'))!.spec!.unschedulable, undefined, 'never cordoned')
  t.match(await metrics.registry.metrics(), /shc_source_up\{source="alertmanager"\} 0/)
  // An operator silences it in Alertmanager: the node is let go, never drained.
  view = new Map([[episodeKey(a.fingerprint, Date.parse(a.startsAt)), 'suppressed']])
  await engine.reconcile()
  await until('cancelled by the silence', async () => await phaseOf(sim, 'worker-3') === 'cancelled')
  t.match((await stateOf(sim, 'worker-3')).reason, /Alertmanager no longer holds any of the node's alerts active \(resolved, silenced or inhibited\)/)
  t.equal((await stateOf(sim, 'worker-3')).alerts[0].status, 'silenced')
  // Active in Alertmanager: confirmed, drained.
  const b = fresh('worker-6')
  view = new Map([[episodeKey(b.fingerprint, Date.parse(b.startsAt)), 'active']])
  await engine.intake([b], 'alertmanager', false)
  await until('worker-6 confirmed and remediated', async () => await phaseOf(sim, 'worker-6') === 'cooldown')
  t.match(await metrics.registry.metrics(), /shc_source_up\{source="alertmanager"\} 1/)
})

t.test('a truncated notification holds its pools until an untruncated notification of its group; Alertmanager\'s syncs do not end the doubt (they cannot count the hidden alerts)', async t => {
  const sim = seededSim()
  let view: Map<string, 'active' | 'suppressed'> = new Map()
  const alertmanager = async () => view
  const { engine } = startEngine(sim, { ALERTMANAGER_SYNC: '200ms' }, { alertmanager })
  t.teardown(async () => { await engine.stop(); sim.close() })
  const a = fresh('worker-1')
  view = new Map([[episodeKey(a.fingerprint, Date.parse(a.startsAt)), 'active']])
  const cut = await engine.intake([a], 'alertmanager', false, { truncatedAlerts: 9, groupKey: 'g' })
  t.match(cut, [{ action: 'deferred', rule: 'truncated', reason: /truncated a notification touching pool app/, detail: { hidden: 9 } }])
  const other = await engine.intake([fresh('worker-6')], 'alertmanager', false)
  t.equal(other[0]!.action, 'remediate', 'other pools are not in doubt')
  await new Promise(resolve => setTimeout(resolve, 700))
  t.equal(await phaseOf(sim, 'worker-1'), 'pending', 'three syncs later, still in doubt')
  t.match(await engine.node('worker-1'), { deferred: { rule: 'truncated' } })
  await engine.intake([a], 'alertmanager', false, { truncatedAlerts: 0, groupKey: 'g' })
  await until('the complete notification ended the doubt and worker-1 started', async () => (await phaseOf(sim, 'worker-1')) !== 'pending', 5000)
})

t.test('a pause holds new starts with who, when and why; work under way reaches its safe point; lifted, all goes on', async t => {
  const sim = seededSim({ terminationDelayMs: 400 })
  const { engine, simProvider } = startEngine(sim, { POOL_MAX_UNAVAILABLE: '2' })
  t.teardown(async () => { await engine.stop(); sim.close() })
  const labelOf = async (node: string) => (await sim.getNode(node))!.metadata!.labels?.[`${prefix}/phase`]
  await engine.intake([fresh('worker-1')], 'alertmanager', false)
  await until('worker-1 draining', async () => await phaseOf(sim, 'worker-1') === 'draining')
  t.equal(await labelOf('worker-1'), 'draining', 'the phase is a label kubectl can select on')
  await engine.setPause(undefined, { reason: 'incident 4711', by: 'alice', at: iso(now()) })
  const held = await engine.intake([fresh('worker-6')], 'alertmanager', false)
  t.match(held, [{ node: 'worker-6', action: 'deferred', rule: 'paused', reason: /deferred: paused cluster-wide by alice at .*: incident 4711$/ }])
  await until('worker-1 drained and held before the provider call', () => sim.events.some(e => e.node === 'worker-1' && e.event.reason === 'RemediationHeld'))
  t.equal(await phaseOf(sim, 'worker-1'), 'remediating', 'drained, waiting at its safe point')
  t.same(simProvider.actions, [], 'no provider call while paused')
  t.match(sim.events.find(e => e.event.reason === 'RemediationHeld')!.event.note, /the reboot waits until the pause ends \(paused cluster-wide by alice/)
  t.match(await engine.pauses(), { pauses: [{ scope: 'cluster', reason: 'incident 4711', by: 'alice' }], windows: { spec: '', open: true, nextOpening: null } })
  await engine.setPause(undefined, undefined)
  await until('both nodes remediated once lifted', async () => await phaseOf(sim, 'worker-1') === 'cooldown' && await phaseOf(sim, 'worker-6') === 'cooldown', 10_000)
  t.same(simProvider.actions.map(a => a.node).sort(), ['worker-1', 'worker-6'])
  t.equal(await labelOf('worker-1'), 'cooldown')
  t.same((await engine.pauses()).pauses, [])
})

t.test('a pool pause holds only its pool; a pause with an expiry ends by itself, with an Event', async t => {
  const sim = seededSim()
  const { engine } = startEngine(sim, { POOL_MAX_UNAVAILABLE: '2' })
  t.teardown(async () => { await engine.stop(); sim.close() })
  const [app, data] = ['worker-2', 'worker-7']
  await engine.setPause('data', { reason: 'db migration', by: 'bob', at: iso(now()), until: iso(now() + 500) })
  const decisions = await engine.intake([fresh(data), fresh(app)], 'alertmanager', false)
  t.match(decisions.find(d => d.node === data), { rule: 'paused', reason: /deferred: paused for pool data by bob at .* until .*: db migration$/ })
  t.not(decisions.find(d => d.node === app)!.rule, 'paused', 'another pool is not held')
  t.match(await engine.node(data), { phase: 'pending', deferred: { rule: 'paused', scope: 'pool=data' } })
  await until('the pause expired and the held node started', async () => await phaseOf(sim, data) === 'cooldown', 10_000)
  t.ok(sim.events.some(e => e.event.reason === 'RemediationPauseExpired' && /pool\/data reached its expiry/.test(e.event.note)), 'an Event says the pause ended')
  t.same((await engine.pauses()).pauses, [])
  t.same(decodeFleetState((await sim.readControllerState()).annotations, '', prefix).pauses, new Map(), 'and it is gone from the Lease')
})

t.test('outside every maintenance window nothing starts, with the next opening; the clock injected', async t => {
  const sim = seededSim()
  // Tuesday 2026-12-01 19:00 UTC, moving with real time so that the engine's timers still run.
  const offset = Date.parse('2026-12-01T19:00:00Z') - Date.now()
  const clock = () => Date.now() + offset
  const { engine } = startEngine(sim, { REMEDIATION_WINDOWS: 'Mon-Fri 08:00-18:00 Europe/Berlin; Sat 10:00-12:00 Europe/Berlin' }, { now: clock })
  t.teardown(async () => { await engine.stop(); sim.close() })
  const decisions = await engine.intake([alert('worker-3', { startsAt: iso(clock() - minutes(10)) })], 'alertmanager', false)
  t.match(decisions, [{ rule: 'window', reason: /outside the maintenance windows \(REMEDIATION_WINDOWS Mon-Fri 08:00-18:00 Europe\/Berlin; Sat 10:00-12:00 Europe\/Berlin\); next opening 2026-12-02T07:00:00.000Z/ }])
  t.match(await engine.node('worker-3'), { phase: 'pending', deferred: { rule: 'window', detail: { nextOpening: '2026-12-02T07:00:00.000Z' } } })
  t.match(await engine.pauses(), { windows: { open: false, nextOpening: '2026-12-02T07:00:00.000Z' } })
})

t.test('the phase label follows the phases and is gone once the node is back to normal', async t => {
  const sim = seededSim()
  const { engine } = startEngine(sim)
  t.teardown(async () => { await engine.stop(); sim.close() })
  const seen: Array<string | undefined> = []
  sim.onNodeChange(node => {
    if (node.metadata?.name !== 'worker-4') return
    const label = node.metadata.labels?.[`${prefix}/phase`]
    if (seen.at(-1) !== label) seen.push(label)
  })
  const a = fresh('worker-4')
  await engine.intake([a], 'alertmanager', false)
  await until('worker-4 cooling down', async () => await phaseOf(sim, 'worker-4') === 'cooldown')
  t.same(seen, ['pending', 'cordoned', 'draining', 'remediating', 'rebooting', 'verifying', 'cooldown'])
  // A pending node whose alert resolves is cancelled: the label goes.
  const b = fresh('worker-8')
  await engine.setPause(undefined, { reason: 'hold', by: 'test', at: iso(now()) })
  await engine.intake([b], 'alertmanager', false)
  await engine.intake([{ ...b, status: 'resolved', endsAt: iso(now()) }], 'alertmanager', false)
  await until('worker-8 cancelled', async () => await phaseOf(sim, 'worker-8') === 'cancelled')
  t.equal((await sim.getNode('worker-8'))!.metadata!.labels?.[`${prefix}/phase`], undefined)
})

t.test('a storm gets a handful of Events, not one per node: alike ones are counted on the Lease; a few stay on their nodes', async t => {
  const sim = seededSim()
  const big = Array.from({ length: 30 }, (_, i) => `big-${i + 1}`)
  for (const [i, name] of big.entries()) {
    sim.addNode({ metadata: { name, uid: `uid-${name}`, labels: { pool: 'big', 'topology.kubernetes.io/zone': i % 2 === 0 ? 'zone-a' : 'zone-b' }, annotations: {} }, spec: {}, status: { conditions: [{ type: 'Ready', status: 'True' }], allocatable: { cpu: '8', memory: '32Gi', pods: '110' } } })
  }
  const { engine } = startEngine(sim)
  t.teardown(async () => { await engine.stop(); sim.close() })
  const decisions = await engine.intake([...big.map(name => fresh(name)), fresh('worker-1'), fresh('worker-2')], 'alertmanager', false)
  t.ok(decisions.filter(d => d.node!.startsWith('big-')).every(d => d.rule === 'circuit-breaker'), 'the storm is held')
  await engine.idle()
  const onBig = sim.events.filter(e => e.node.startsWith('big-'))
  t.same(onBig, [], 'no Event per node of the storm')
  const counted = sim.events.filter(e => e.node === 'self-healing-controller')
  t.match(counted.map(e => e.event), [
    { reason: 'RemediationPending', note: /^30 nodes of pool big: RemediationPending: big-1, big-2, big-3, big-4, big-5 and 25 more; big-\d+: alert NodeDiskIOPSSaturated firing since / },
    { reason: 'RemediationDeferred', note: /^30 nodes of pool big: RemediationDeferred \(rule circuit-breaker\): big-1, big-2, big-3, big-4, big-5 and 25 more; big-\d+: circuit breaker open for pool=big/ }
  ], `one Event for the pool per step (${counted.map(e => e.event.note)})`)
  t.equal(counted.length, 2)
  t.ok(sim.events.some(e => e.node === 'worker-1' && e.event.reason === 'RemediationPending'), 'a small group keeps its Events on its nodes')
  t.equal((await stateOf(sim, 'big-17')).deferred.rule, 'circuit-breaker', 'each node\'s record still says why')
})

t.test('stopping: a notification under way stops writing and fails as unavailable (Alertmanager redelivers); what was written stays', async t => {
  const sim = seededSim()
  // Slow writes, as in a storm on a busy API server, so that the stop comes part way.
  const patchNode = sim.patchNode.bind(sim)
  sim.patchNode = async (...args) => { await new Promise(resolve => setTimeout(resolve, 30)); return await patchNode(...args) }
  const { engine } = startEngine(sim, { WRITE_CONCURRENCY: '1' })
  t.teardown(() => sim.close())
  const storm = Array.from({ length: 10 }, (_, i) => fresh(`worker-${i + 1}`))
  const answer = engine.intake(storm, 'alertmanager', false)
  await until('the first node written', async () => await phaseOf(sim, 'worker-1') === 'pending')
  await engine.stop()
  await t.rejects(answer, { kind: 'unavailable', message: /shutting down/ })
  const written = (await Promise.all(storm.map(a => phaseOf(sim, a.labels.node!)))).filter(p => p !== undefined)
  t.ok(written.length >= 1 && written.length < 10, `stopped part way (${written.length} of 10 written)`)
  t.ok(written.every(p => p === 'pending'), 'each written node is a whole record')
  await t.rejects(engine.intake([fresh('worker-1')], 'alertmanager', false), { kind: 'unavailable', message: /shutting down/ }, 'a stopped engine takes no new notification')
})

t.test('node-local CSI volumes (TopoLVM, OpenEBS: their own key, the node\'s name as value) are data on this machine; a zone-pinned one is not', async t => {
  const sim = seededSim()
  const pinned = (name: string, node: string, key: string, values: string[]) => {
    sim.addController('default', 'StatefulSet', name)
    sim.addVolume({ metadata: { name: `pv-${name}` }, spec: { csi: { driver: 'example.csi', volumeHandle: name }, capacity: { storage: '10Gi' }, nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key, operator: 'In', values }] }] } } } })
    sim.addClaim({ metadata: { name: `data-${name}-0`, namespace: 'default' }, spec: { volumeName: `pv-${name}` } })
    sim.addPod({ metadata: { name: `${name}-0`, namespace: 'default', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name, uid: `sim-owner-${name}`, controller: true }] }, spec: { nodeName: node, containers: [], volumes: [{ name: 'data', persistentVolumeClaim: { claimName: `data-${name}-0` } }] }, status: { phase: 'Running' } })
  }
  pinned('lvdb', 'worker-8', 'topology.topolvm.io/node', ['worker-8'])
  pinned('zfsdb', 'worker-7', 'openebs.io/nodename', ['worker-7'])
  pinned('zonal', 'worker-6', 'topology.kubernetes.io/zone', ['zone-b'])
  const { engine } = startEngine(sim, { POOL_MAX_UNAVAILABLE: '3', BREAKER_THRESHOLD: '0.9' })
  t.teardown(async () => { await engine.stop(); sim.close() })
  const replace = (node: string) => fresh(node, { labels: { remediation: 'replace' } })
  for (const node of ['worker-8', 'worker-7']) {
    const [d] = await engine.intake([replace(node)], 'alertmanager', false)
    t.match(d, { rule: 'protected-pods', reason: /PersistentVolume/ }, `${node}: its data would be destroyed by a replace`)
  }
  const [zonal] = await engine.intake([replace('worker-6')], 'alertmanager', false)
  t.not(zonal!.rule, 'protected-pods', 'a volume any node of its zone can mount survives the replace')
})

t.test('pods that cannot be classified (an owner lookup refused) hold their node like protected ones, say why, and starve no other node', async t => {
  const sim = seededSim()
  sim.addPod({ metadata: { name: 'odd-0', namespace: 'locked', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'odd', uid: 'o', controller: true }] }, spec: { nodeName: 'worker-2', containers: [] }, status: { phase: 'Running' } })
  const controllerExists = sim.controllerExists.bind(sim)
  sim.controllerExists = async (namespace, owner) => {
    if (namespace === 'locked') throw new ClusterError('invalid', 'statefulsets.apps "odd" is forbidden')
    return await controllerExists(namespace, owner)
  }
  const { engine } = startEngine(sim, { MAX_CONCURRENT_DRAINS: '2', VERIFY_DWELL: '1h' })
  t.teardown(async () => { await engine.stop(); sim.close() })
  const [first] = await engine.intake([fresh('worker-2')], 'alertmanager', false)
  t.match(first, { action: 'deferred', rule: 'protected-pods', reason: /cannot tell whether the drain would lose data: statefulsets.apps "odd" is forbidden/ })
  await engine.intake([fresh('worker-7')], 'alertmanager', false)
  await until('worker-7, in another pool with a free slot, starts', async () => await phaseOf(sim, 'worker-7') !== 'pending')
  t.equal(await phaseOf(sim, 'worker-2'), 'pending', 'worker-2 never cordoned')
  t.match(await engine.node('worker-2'), { deferred: { rule: 'protected-pods', reason: /cannot tell/ } })
})

t.test('a departed node whose pool is not whole by REPLACE_TIMEOUT fails and keeps its slot until an operator releases it; a failed node an operator deletes frees its slot', async t => {
  const sim = seededSim()
  const { engine } = startEngine(sim, { MAX_CONCURRENT_DRAINS: '1', REPLACE_TIMEOUT: '600ms' }, { provider: replacedElsewhere })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([fresh('worker-6', { labels: { remediation: 'replace' } })], 'alertmanager', false)
  await until('worker-6 replacing', async () => await phaseOf(sim, 'worker-6') === 'replacing')
  sim.removeNode('worker-6')
  await until('the departure is recorded', async () => (await departedOf(sim)).has('worker-6'))
  t.match(await engine.releaseDeparted('worker-6'), { released: false, refused: 'waiting' }, 'a replacement under way cannot be cut short')
  await until('no replacement came: the entry failed', async () => (await departedOf(sim)).get('worker-6')?.failed !== undefined, 5000)
  t.equal((await engine.intake([fresh('worker-1')], 'alertmanager', false))[0]!.rule, 'semaphore', 'its slot is still held')
  t.same(await engine.releaseDeparted('worker-6'), { released: true })
  t.notOk((await departedOf(sim)).has('worker-6'))
  t.ok(sim.events.some(e => e.event.reason === 'RemediationDepartedReleased'))
  await until('worker-1 takes the freed slot', async () => (await phaseOf(sim, 'worker-1')) !== 'pending')
  t.match(await engine.releaseDeparted('worker-6'), { released: false, refused: 'not-found' })
})

t.test('a failed node an operator deletes, or a verified one an autoscaler removes, is gone: no departure, its slot is free', async t => {
  const sim = seededSim()
  const { engine } = startEngine(sim, { MAX_CONCURRENT_DRAINS: '1' }, { provider: noneProvider })
  t.teardown(async () => { await engine.stop(); sim.close() })
  await engine.intake([fresh('worker-6')], 'alertmanager', false)
  await until('worker-6 failed (PROVIDER=none)', async () => await phaseOf(sim, 'worker-6') === 'failed')
  sim.removeNode('worker-6')
  await new Promise(resolve => setTimeout(resolve, 100))
  t.same([...(await departedOf(sim)).keys()], [], 'no departed entry')
  await engine.intake([fresh('worker-1')], 'alertmanager', false)
  await until('worker-1 starts on the freed slot', async () => (await phaseOf(sim, 'worker-1')) !== 'pending')
})

t.test('the Events tell the whole story as `kubectl describe node` shows it, one line a step, each readable by a person', async t => {
  const sim = seededSim()
  const { engine } = startEngine(sim)
  t.teardown(async () => { await engine.stop(); sim.close() })
  const firing = fresh('worker-3')
  await engine.intake([firing], 'alertmanager', false)
  await until('worker-3 cooling down', async () => await phaseOf(sim, 'worker-3') === 'cooldown')
  const lines = sim.events.filter(e => e.node === 'worker-3').map(e => `${e.event.reason}: ${e.event.note}`)
  const instant = '(\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z)'
  const story = [
    new RegExp(`^RemediationPending: alert NodeDiskIOPSSaturated firing since ${firing.startsAt.replaceAll('.', '\\.')}$`),
    /^RemediationCordoned: cordoned to reboot$/,
    new RegExp(`^RemediationDraining: draining until ${instant} at the latest$`),
    /^RemediationRemediating: drained: evicted 2 pods, skipped 3 \(default\/node-exporter-worker-3: DaemonSet pod; default\/kube-proxy-worker-3: mirror pod; default\/report-29031: finished \(Succeeded\)\)$/,
    new RegExp(`^RemediationRebooting: provider sim: simulated machine of worker-3 rebooted; waiting until ${instant} at the latest for the node to be Ready on a new boot$`),
    /^RemediationVerifying: node Ready again on a new boot \(worker-3-boot-\w+\); back in service, proving the fix for VERIFY_DWELL$/,
    /^RemediationCooldown: fix proven: Ready and schedulable for VERIFY_DWELL without a re-fire$/
  ]
  t.match(lines, story)
  t.equal(lines.length, story.length, 'one Event a step, no more', { lines })
  // The deadlines named are the configured ones (the test settings: DRAIN_TIMEOUT 3s, REBOOT_TIMEOUT 15m), counted from the step's start.
  const state = await stateOf(sim, 'worker-3')
  const enteredAt = (phase: string) => Date.parse((state.history as Array<{ to: string, at: string }>).find(h => h.to === phase)!.at)
  const deadline = (line: number) => Date.parse(new RegExp(instant).exec(lines[line]!)![1]!)
  t.equal(deadline(2) - enteredAt('draining'), 3000, 'the drain deadline is DRAIN_TIMEOUT after the drain began')
  t.equal(deadline(4) - enteredAt('rebooting'), minutes(15), 'the reboot wait is REBOOT_TIMEOUT after the reboot')
  t.match(lines[5], `(${(await sim.getNode('worker-3'))!.status!.nodeInfo!.bootID})`, 'the new boot is the one the node reports')
})
