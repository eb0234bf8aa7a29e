import fc from 'fast-check'
import t from 'tap'
import { contributionOf, emptyUsage, applyContribution, scopeKeys, type ScopeUsage } from '../../src/policy/budget.ts'
import { createFleet } from '../../src/remediation/fleet.ts'
import { phases } from '../../src/remediation/record.ts'
import type { NodeView } from '../../src/remediation/snapshot.ts'
import { iso } from '../../src/time.ts'
import { firingAlert, minutes, policy, record, T0, view } from '../support/core.ts'

const config = policy()

/** The aggregates recounted from scratch: what the incremental index must always equal. */
function recount (views: Iterable<NodeView>, departed: Array<{ pool: string, zone: string }>) {
  const usages = new Map<string, ScopeUsage>()
  let slots = 0
  const add = (c: ReturnType<typeof contributionOf>) => {
    for (const [i, key] of scopeKeys(c).entries()) {
      if (!usages.has(key)) usages.set(key, emptyUsage(key, c.pool, i === 0 ? undefined : c.zone))
      applyContribution(usages.get(key)!, c, 1)
    }
    if (c.slot) slots++
  }
  for (const v of views) add(contributionOf(v, config))
  for (const d of departed) add({ pool: d.pool, zone: d.zone, cause: 'departed (replaced, replacement not proven yet)', ours: true, slot: true })
  return { usages, slots }
}

const viewArb = fc.record({
  name: fc.constantFrom('n1', 'n2', 'n3', 'n4', 'n5', 'n6'),
  pool: fc.constantFrom('app', 'data'),
  zone: fc.constantFrom('a', 'b'),
  unschedulable: fc.boolean(),
  ready: fc.boolean(),
  deleting: fc.boolean(),
  tainted: fc.boolean(),
  phase: fc.option(fc.constantFrom(...phases), { nil: undefined }),
  alerting: fc.boolean()
}).map(v => view(v.name, {
  pool: v.pool,
  zone: v.zone,
  unschedulable: v.unschedulable,
  ready: v.ready,
  deleting: v.deleting,
  taints: v.tainted ? [{ key: 'ToBeDeletedByClusterAutoscaler', effect: 'NoSchedule' }] : [],
  record: v.phase === undefined ? undefined : record({ phase: v.phase, since: iso(T0), alerts: v.alerting ? [firingAlert()] : [] })
}))

const op = fc.oneof(
  viewArb.map(v => ({ kind: 'upsert' as const, view: v })),
  fc.constantFrom('n1', 'n2', 'n3', 'n4', 'n5', 'n6').map(name => ({ kind: 'remove' as const, name })),
  fc.array(fc.record({ pool: fc.constantFrom('app', 'data'), zone: fc.constantFrom('a', 'b') }), { maxLength: 3 }).map(departed => ({ kind: 'departed' as const, departed }))
)

t.test('the incremental aggregates always equal a full recount, whatever the order of changes', async t => {
  fc.assert(fc.property(fc.array(op, { maxLength: 60 }), ops => {
    const fleet = createFleet(config)
    const views = new Map<string, NodeView>()
    let departed: Array<{ pool: string, zone: string }> = []
    for (const o of ops) {
      if (o.kind === 'upsert') { fleet.upsert(o.view); views.set(o.view.name, o.view) }
      if (o.kind === 'remove') { fleet.remove(o.name); views.delete(o.name) }
      if (o.kind === 'departed') {
        departed = o.departed
        fleet.setState({ ...fleet.state, departed: new Map(departed.map((d, i) => [`gone-${i}`, { node: `gone-${i}`, uid: 'u', goneAt: iso(T0), expected: 5, deadline: iso(T0 + minutes(30)), ...d }])) })
      }
      const expected = recount(views.values(), departed)
      if (fleet.slotsHeld() !== expected.slots) throw new Error(`slots ${fleet.slotsHeld()} != ${expected.slots}`)
      for (const [key, want] of expected.usages) {
        const got = fleet.usage(key)
        if (got.size !== want.size || got.outOfService !== want.outOfService || got.ours !== want.ours || got.slots !== want.slots) throw new Error(`${key}: ${JSON.stringify(got)} != ${JSON.stringify(want)}`)
        if (JSON.stringify([...got.causes].sort()) !== JSON.stringify([...want.causes].sort())) throw new Error(`${key} causes differ`)
      }
      const pendingNames = [...views.values()].filter(v => v.record?.phase === 'pending').map(v => v.name).sort()
      if (JSON.stringify(fleet.pendingInTurn().map(v => v.name).sort()) !== JSON.stringify(pendingNames)) throw new Error('pending set differs')
      if ([...fleet.withRecords()].length !== [...views.values()].filter(v => v.record !== undefined).length) throw new Error('record set differs')
    }
  }), { seed: 20261201, numRuns: 500 })
  t.pass('500 seeded histories of node changes')
})

t.test('pending nodes come first come first served; ties by name', async t => {
  const fleet = createFleet(config)
  fleet.upsert(view('b', { record: record({ phase: 'pending', since: iso(T0) }) }))
  fleet.upsert(view('a', { record: record({ phase: 'pending', since: iso(T0) }) }))
  fleet.upsert(view('c', { record: record({ phase: 'pending', since: iso(T0 - 1000) }) }))
  fleet.upsert(view('d', { record: record({ phase: 'cooldown', since: iso(T0 - 5000) }) }))
  t.same(fleet.pendingInTurn().map(v => v.name), ['c', 'a', 'b'])
})

t.test('the breaker\'s count and the storm clock are read from the nodes with alerts only', async t => {
  const fleet = createFleet(config)
  fleet.upsert(view('a', { record: record({ alerts: [firingAlert({ receivedAt: iso(T0 - 5000), lastSeen: iso(T0 - 5000) })] }) }))
  fleet.upsert(view('b', { zone: 'zone-b', record: record({ alerts: [firingAlert({ status: 'resolved', endedAt: iso(T0 - minutes(20)), receivedAt: iso(T0 - minutes(30)) })] }) }))
  fleet.upsert(view('c'))
  t.equal(fleet.alertedWithin('pool=app', T0, minutes(10)), 1)
  t.equal(fleet.alertedWithin('pool=app', T0, minutes(30)), 2)
  t.equal(fleet.alertedWithin('pool=app,zone=zone-b', T0, minutes(10)), 0)
  t.equal(fleet.lastNewAlertingAt(T0), T0 - 5000, 'only live episodes move the storm clock')
})
