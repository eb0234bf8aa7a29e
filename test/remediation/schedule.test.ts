import t from 'tap'
import { updateBreakers } from '../../src/policy/circuit-breaker.ts'
import { iso } from '../../src/time.ts'
import { nextToStart, planReconcile } from '../../src/remediation/schedule.ts'
import { firingAlert, fleet, minutes, policy, T0 } from '../support/core.ts'

const pending = (sinceMinutes: number) => ({ phase: 'pending' as const, since: iso(T0 - minutes(sinceMinutes)), alert: firingAlert() })

t.test('first come, first served, up to the free slots', async t => {
  const config = policy({ maxConcurrentDrains: 2, poolSpacingMs: 0, breakerMinNodes: 100 })
  const snapshot = fleet({ app: 10 }, { 'app-1': pending(1), 'app-2': pending(3), 'app-3': pending(2), 'app-4': { phase: 'draining' } })
  const schedule = nextToStart(snapshot, T0, config, new Map())
  t.same(schedule.start, ['app-2'], 'one slot left: the oldest pending node gets it')
  t.equal(schedule.blocked.get('app-3')?.rule, 'semaphore')
  t.equal(schedule.blocked.get('app-1')?.rule, 'semaphore')
})

t.test('one pass never starts two nodes of a pool inside the spacing', async t => {
  const config = policy({ maxConcurrentDrains: 5, poolSpacingMs: minutes(5), breakerMinNodes: 100 })
  const snapshot = fleet({ app: 10, data: 10 }, { 'app-1': pending(2), 'app-2': pending(1), 'data-1': pending(1) })
  const schedule = nextToStart(snapshot, T0, config, new Map())
  t.same(schedule.start.sort(), ['app-1', 'data-1'])
  t.equal(schedule.blocked.get('app-2')?.rule, 'cooldown')
})

t.test('an open breaker holds pending nodes of its scope', async t => {
  const config = policy({ maxConcurrentDrains: 5, poolSpacingMs: 0 })
  const snapshot = fleet({ app: 10 }, { 'app-1': pending(2), 'app-2': pending(1) })
  const breakers = updateBreakers(new Map(), snapshot, T0, config)
  const schedule = nextToStart(snapshot, T0, config, breakers)
  t.same(schedule.start, [])
  t.equal(schedule.blocked.get('app-1')?.rule, 'circuit-breaker')
})

t.test('reconcile plan: resume interrupted work, release uncordoned nodes, end cooldowns', async t => {
  const config = policy({ poolSpacingMs: 0, breakerMinNodes: 100 })
  const snapshot = fleet({ app: 8 }, {
    'app-1': { phase: 'cordoned' },
    'app-2': { phase: 'draining' },
    'app-3': { phase: 'remediating' },
    'app-4': { phase: 'cooldown', cooldownUntil: iso(T0 - 1) },
    'app-5': { phase: 'cooldown', cooldownUntil: iso(T0 + 1) },
    'app-6': { phase: 'failed' }
  })
  for (const name of ['app-1', 'app-2', 'app-6']) snapshot.set(name, { ...snapshot.get(name)!, unschedulable: true })
  snapshot.set('app-2', { ...snapshot.get('app-2')!, unschedulable: false })
  const steps = planReconcile(snapshot, T0, config, new Map())
  t.same(steps.map(s => `${s.kind}:${s.node}`).sort(), ['end-cooldown:app-4', 'operator-uncordoned:app-2', 'resume:app-1', 'resume:app-3'])
})
