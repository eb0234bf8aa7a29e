import t from 'tap'
import { hysteresisBlock, recordFiring } from '../../src/policy/hysteresis.ts'
import { iso } from '../../src/time.ts'
import { firingAlert, minutes, policy, record, T0 } from '../support/core.ts'

const config = policy({ minFiringAgeMs: minutes(2), flapWindowMs: minutes(60), flapMaxRefires: 2 })

t.test('minimum firing age counts from startsAt', async t => {
  const young = record({ alert: firingAlert({ startsAt: iso(T0 - minutes(1)) }), firings: [iso(T0 - minutes(1))] })
  const block = hysteresisBlock(young, T0, config)
  t.equal(block?.rule, 'hysteresis')
  t.match(block?.reason, /minimum firing age reached at 2026-11-23T12:01:00.000Z/)
  t.equal(hysteresisBlock(young, T0 + minutes(1), config), undefined, 'old enough one minute later')
})

t.test('more re-fires than allowed within the window hold the node', async t => {
  const starts = [50, 40, 30, 20].map(m => iso(T0 - minutes(m)))
  const flapping = record({ alert: firingAlert({ startsAt: starts.at(-1)! }), firings: starts })
  t.match(hysteresisBlock(flapping, T0, config)?.reason, /flapping: re-fired 3 times/)
  const calm = record({ alert: firingAlert({ startsAt: starts.at(-1)! }), firings: starts.slice(1) })
  t.equal(hysteresisBlock(calm, T0, config), undefined, 'exactly the allowed re-fires is fine')
  t.equal(hysteresisBlock(flapping, T0 + minutes(15), config), undefined, 'the oldest start left the window')
})

t.test('recordFiring adds a start once and forgets starts outside the window', async t => {
  const old = iso(T0 - minutes(61))
  const recent = iso(T0 - minutes(5))
  t.same(recordFiring([old, recent], iso(T0 - minutes(1)), T0, config), [recent, iso(T0 - minutes(1))])
  t.same(recordFiring([recent], iso(T0 - minutes(5)), T0, config), [recent], 'the same start is not counted twice')
})
