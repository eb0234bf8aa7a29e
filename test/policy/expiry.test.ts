import t from 'tap'
import { alertedWithin, drivingAlert, endOf, isLive, liveAlerts, nextExpiry, whyEnded } from '../../src/policy/expiry.ts'
import { iso } from '../../src/time.ts'
import { firingAlert, minutes, policy, record, T0 } from '../support/core.ts'

const config = policy({ alertTtlMs: minutes(130) })

t.test('a firing alert counts until ALERT_TTL after Alertmanager last sent it', async t => {
  const a = firingAlert({ lastSeen: iso(T0 - minutes(100)) })
  t.ok(isLive(a, T0, config))
  t.equal(endOf(a, config), T0 + minutes(30))
  t.notOk(isLive(a, T0 + minutes(30), config), 'stale: counts for nothing')
  t.match(whyEnded(a, T0 + minutes(30), config), /not repeated by Alertmanager within ALERT_TTL .*stale/)
})

t.test('an injected fault ends at its endsAt; resolved, silenced and expired episodes never count', async t => {
  const fault = firingAlert({ source: 'fault', endsAt: iso(T0 + minutes(5)) })
  t.ok(isLive(fault, T0, config))
  t.notOk(isLive(fault, T0 + minutes(5), config))
  t.match(whyEnded(fault, T0 + minutes(5), config), /ended at/)
  for (const status of ['resolved', 'silenced', 'expired'] as const) t.notOk(isLive(firingAlert({ status, endedAt: iso(T0) }), T0, config), status)
  t.match(whyEnded(firingAlert({ status: 'silenced' }), T0, config), /silenced or inhibited/)
})

t.test('the breaker counts nodes alerting now or within the settle time; an episode only ever seen resolved never counted', async t => {
  const ended = record({ alerts: [firingAlert({ status: 'resolved', endedAt: iso(T0 - minutes(4)) })] })
  t.ok(alertedWithin(ended, T0, minutes(5), config))
  t.notOk(alertedWithin(ended, T0, minutes(3), config))
  const neverFired = record({ alerts: [firingAlert({ status: 'resolved' })] })
  t.notOk(alertedWithin(neverFired, T0, minutes(60), config))
  t.ok(alertedWithin(record({ alerts: [firingAlert()] }), T0, 0, config))
})

t.test('the strongest action drives the node: replace over drain over reboot', async t => {
  const reboot = firingAlert({ fingerprint: 'r', action: 'reboot' })
  const drain = firingAlert({ fingerprint: 'd', action: 'ladder' })
  const replace = firingAlert({ fingerprint: 'x', action: 'replace' })
  t.equal(drivingAlert([reboot, drain]), drain)
  t.equal(drivingAlert([reboot, replace, drain]), replace)
  t.equal(drivingAlert([]), undefined)
})

t.test('the next expiry is when the first live alert stops counting', async t => {
  const r = record({ alerts: [firingAlert({ fingerprint: 'a', lastSeen: iso(T0 - minutes(120)) }), firingAlert({ fingerprint: 'b', lastSeen: iso(T0 - minutes(10)) }), firingAlert({ fingerprint: 'c', status: 'resolved', endedAt: iso(T0) })] })
  t.equal(liveAlerts(r, T0, config).length, 2)
  t.equal(nextExpiry(r, T0, config), T0 + minutes(10))
})
