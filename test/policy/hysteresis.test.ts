import t from 'tap'
import { hysteresisBlock, recordFiring } from '../../src/policy/hysteresis.ts'
import { iso } from '../../src/time.ts'
import { firingAlert, minutes, policy, record, T0 } from '../support/core.ts'

const config = policy({ minFiringAgeMs: minutes(2), flapWindowMs: minutes(60), flapMaxRefires: 2 })

t.test('minimum firing age counts from the oldest live alert\'s startsAt, and says when it lifts', async t => {
  const young = firingAlert({ startsAt: iso(T0 - minutes(1)) })
  const block = hysteresisBlock(record({ firings: [young.startsAt] }), [young], T0, config)
  t.equal(block?.rule, 'hysteresis')
  t.match(block?.reason, /minimum firing age reached at 2026-11-23T12:01:00.000Z/)
  t.equal(block?.until, T0 + minutes(1), 'the engine wakes up then')
  t.equal(hysteresisBlock(record(), [young], T0 + minutes(1), config), undefined, 'old enough one minute later')
  const older = firingAlert({ fingerprint: 'other', startsAt: iso(T0 - minutes(5)) })
  t.equal(hysteresisBlock(record(), [young, older], T0, config), undefined, 'another alert has been firing long enough')
  t.match(hysteresisBlock(record(), [], T0, config)?.reason, /no firing alert recorded/)
})

t.test('more re-fires than allowed within the window hold the node; the numbers are not in the reason', async t => {
  const starts = [50, 40, 30, 20].map(m => iso(T0 - minutes(m)))
  const live = [firingAlert({ startsAt: starts.at(-1)! })]
  const flapping = hysteresisBlock(record({ firings: starts }), live, T0, config)
  t.match(flapping?.reason, /flapping: re-fired more than 2 times within 3600s/)
  t.same(flapping?.detail, { refires: 3 })
  t.equal(flapping?.until, T0 + minutes(10), 'lifts when the oldest start leaves the window')
  t.equal(hysteresisBlock(record({ firings: starts.slice(1) }), live, T0, config), undefined, 'exactly the allowed re-fires is fine')
  t.equal(hysteresisBlock(record({ firings: starts }), live, T0 + minutes(15), config), undefined, 'the oldest start left the window')
})

t.test('recordFiring adds a start once and forgets starts outside the window', async t => {
  const old = iso(T0 - minutes(61))
  const recent = iso(T0 - minutes(5))
  t.same(recordFiring([old, recent], iso(T0 - minutes(1)), T0, config), [recent, iso(T0 - minutes(1))])
  t.same(recordFiring([recent], iso(T0 - minutes(5)), T0, config), [recent], 'the same start is not counted twice')
})
