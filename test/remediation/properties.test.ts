import fc from 'fast-check'
import t from 'tap'
import type { WebhookAlert } from '../../src/alerts/webhook.ts'
import { breakerBlock, updateBreakers, type BreakerState } from '../../src/policy/circuit-breaker.ts'
import { drainsInFlight } from '../../src/policy/semaphore.ts'
import { triage } from '../../src/remediation/intake.ts'
import { iso } from '../../src/time.ts'
import { planReconcile } from '../../src/remediation/schedule.ts'
import type { NodeView } from '../../src/remediation/snapshot.ts'
import {
  beginDrain, deferPending, drainSucceeded, endCooldown, failRemediation, operatorUncordoned, remediationSucceeded, startRemediation, type Change
} from '../../src/remediation/transitions.ts'
import { alert, fleet, minutes, policy, T0 } from '../support/core.ts'

/**
 * Random histories of notifications, operator actions, drain outcomes and time, driven through
 * the pure core exactly as the engine drives it. The invariants must hold after every step.
 * Seeded: a failure names its seed and replays.
 */
const nodes = [...fleet({ app: 5, data: 5 }).keys()]
const quiet = new Set(['data-5']) // only ever receives alerts that must be ignored

const event = fc.oneof(
  fc.record({ kind: fc.constant('fire' as const), node: fc.constantFrom(...nodes), episode: fc.integer({ min: 0, max: 3 }), invalid: fc.constantFrom('none', 'none', 'none', 'none', 'no-opt-in', 'future', 'unknown-node', 'no-node') }),
  fc.record({ kind: fc.constant('resolve' as const), node: fc.constantFrom(...nodes), episode: fc.integer({ min: 0, max: 3 }) }),
  fc.record({ kind: fc.constant('reconcile' as const), drainFails: fc.boolean() }),
  fc.record({ kind: fc.constant('uncordon' as const), node: fc.constantFrom(...nodes) }),
  fc.record({ kind: fc.constant('tick' as const), minutes: fc.integer({ min: 1, max: 40 }) })
)

for (const maxConcurrentDrains of [1, 2]) {
  t.test(`invariants hold for any history (maxConcurrentDrains=${maxConcurrentDrains})`, async t => {
    const config = policy({ maxConcurrentDrains, minFiringAgeMs: minutes(2), poolSpacingMs: minutes(3), cooldownMs: minutes(30), breakerSettleMs: minutes(10), flapMaxRefires: 2 })
    fc.assert(fc.property(fc.array(event, { minLength: 10, maxLength: 80, size: 'max' }), events => {
      let now = T0
      let snapshot = fleet({ app: 5, data: 5 })
      let breakers: Map<string, BreakerState> = new Map()
      const apply = (name: string, change: Change | undefined) => {
        if (change === undefined) return
        const view = snapshot.get(name)!
        snapshot = new Map(snapshot).set(name, { ...view, record: change.record, unschedulable: change.unschedulable ?? view.unschedulable })
      }

      for (const e of events) {
        if (e.kind === 'tick') { now += minutes(e.minutes); continue }
        if (e.kind === 'uncordon') { const v = snapshot.get(e.node)!; snapshot = new Map(snapshot).set(e.node, { ...v, unschedulable: false }); continue }
        if (e.kind === 'fire' || e.kind === 'resolve') {
          const name = e.node
          const invalid = e.kind === 'fire' ? (quiet.has(e.node) && e.invalid === 'none' ? 'no-opt-in' : e.invalid) : 'none'
          const startsAt = T0 + minutes(e.episode * 20)
          let a: WebhookAlert = alert(invalid === 'unknown-node' ? 'ghost' : invalid === 'no-node' ? undefined : name, { startsAt: iso(invalid === 'future' ? now + minutes(30) : Math.min(startsAt, now)), fingerprint: `fp-${name}` })
          if (invalid === 'no-opt-in') a = { ...a, labels: { alertname: 'X', node: name } }
          if (e.kind === 'resolve') a = { ...a, status: 'resolved', endsAt: iso(now) }
          const first = triage([a], snapshot, now, config, breakers)
          snapshot = new Map(first.snapshot)
          // Replaying the same notification changes nothing.
          const replay = triage([a], snapshot, now, config, breakers)
          if (replay.changes.size !== 0) throw new Error(`replay changed ${[...replay.changes.keys()]}`)
          continue
        }
        // reconcile: exactly the engine's steps, with drains finishing (or timing out) at once
        breakers = updateBreakers(breakers, snapshot, now, config)
        for (const step of planReconcile(snapshot, now, config, breakers)) {
          const view: NodeView = snapshot.get(step.node)!
          const record = view.record!
          switch (step.kind) {
            case 'start': {
              if (quiet.has(step.node)) throw new Error(`${step.node} started from an ignored alert`)
              if (record.cooldownUntil !== undefined && Date.parse(record.cooldownUntil) > now) throw new Error(`${step.node} started inside its cooldown`)
              if (breakerBlock(view, breakers, config) !== undefined) throw new Error(`${step.node} started with its breaker open`)
              if (record.alert?.status !== 'firing') throw new Error(`${step.node} started without a firing alert`)
              apply(step.node, startRemediation(view, now))
              break
            }
            case 'defer': apply(step.node, deferPending(record, step.block)); break
            case 'end-cooldown': apply(step.node, endCooldown(record, now)); break
            case 'operator-uncordoned': apply(step.node, operatorUncordoned(record, now, config)); break
            case 'resume':
              if (record.phase === 'cordoned') apply(step.node, beginDrain(record, now, config))
              else if (record.phase === 'draining') apply(step.node, e.drainFails ? failRemediation(record, now, 'drain-timeout', 'deadline') : drainSucceeded(record, now, 'drained'))
              else if (record.phase === 'remediating') apply(step.node, remediationSucceeded(view, now, config, 'done'))
              break
          }
          if (drainsInFlight(snapshot) > config.maxConcurrentDrains) throw new Error(`${drainsInFlight(snapshot)} drains in flight`)
        }
      }
      return true
    }), { seed: 20261123 + maxConcurrentDrains, numRuns: 300 })
    t.pass('300 seeded histories')
  })
}

t.test('the property harness can fail: with a broken semaphore the invariant is caught', async t => {
  const broken = policy({ maxConcurrentDrains: 100, breakerMinNodes: 100, poolSpacingMs: 0, minFiringAgeMs: 0 })
  let snapshot = fleet({ app: 5 })
  for (const name of ['app-1', 'app-2']) snapshot = new Map(triage([alert(name)], snapshot, T0, broken, new Map()).snapshot)
  for (const step of planReconcile(snapshot, T0, broken, new Map())) {
    if (step.kind === 'start') snapshot = new Map(snapshot).set(step.node, { ...snapshot.get(step.node)!, record: startRemediation(snapshot.get(step.node)!, T0).record })
  }
  t.ok(drainsInFlight(snapshot) > 1, 'two drains start when the limit allows it, so a limit of 1 is what the property checks')
})
