import t from 'tap'
import { backFromReboot, fixProven, notFixed, providerDone, returnToService, startRemediation, uncordonedByOperator, deferPending, drainSucceeded } from '../../src/remediation/transitions.ts'
import { iso } from '../../src/time.ts'
import { minutes, policy, record, T0, view } from '../support/core.ts'

const config = policy({ rebootTimeoutMs: minutes(15), replaceTimeoutMs: minutes(30), cooldownMs: minutes(30), ladderWindowMs: minutes(24 * 60) })

t.test('cordoning fixes the rung, ties the record to the Node object and remembers the boot', async t => {
  const node = view('n', { bootID: 'boot-1', record: record({ phase: 'pending', remediations: [{ at: iso(T0 - minutes(25 * 60)), action: 'reboot' }] }) })
  const change = startRemediation(node, 'replace', T0, config)
  t.equal(change.unschedulable, true)
  t.match(change.record, { phase: 'cordoned', action: 'replace', uid: 'uid-n', bootID: 'boot-1', wasUnschedulable: false, startedAt: iso(T0) })
  t.same(change.record.remediations, [{ at: iso(T0), action: 'replace' }], 'remediations outside the ladder window are forgotten')
})

t.test('what the provider said decides the next phase; nothing performed is never a fix', async t => {
  const remediating = record({ phase: 'remediating' })
  const restarted = providerDone(remediating, T0, config, 'aws', { detail: 'rebooted', outcome: 'restarted' })
  t.match(restarted.record, { phase: 'rebooting', rebootDeadline: iso(T0 + minutes(15)) })
  t.equal(restarted.unschedulable, undefined, 'still cordoned')
  const replacing = providerDone(remediating, T0, config, 'aws', { detail: 'terminated in group', outcome: 'replacing' })
  t.match(replacing.record, { phase: 'replacing', replaceDeadline: iso(T0 + minutes(30)) })
  const none = providerDone(remediating, T0, config, 'none', { detail: 'left alone', outcome: 'not-performed' })
  t.match(none.record, { phase: 'failed', outcome: 'not-performed', reason: /nothing was fixed/ })
  const again = providerDone(record({ phase: 'remediating', rebootDeadline: iso(T0 - 1000) }), T0 + minutes(1), config, 'aws', { detail: 'rebooted', outcome: 'restarted' })
  t.equal(again.record.rebootDeadline, iso(T0 - 1000), 'a repeated step after a restart keeps the deadline')
})

t.test('a rebooting node is back only when Ready on another boot; then it is returned to service and verified', async t => {
  const rebooting = record({ phase: 'rebooting', bootID: 'boot-1', wasUnschedulable: false })
  t.notOk(backFromReboot(view('n', { bootID: 'boot-1', record: rebooting })))
  t.notOk(backFromReboot(view('n', { bootID: 'boot-2', ready: false, record: rebooting })))
  t.notOk(backFromReboot(view('n', { bootID: undefined, record: rebooting })), 'no boot id: cannot be seen to come back')
  t.ok(backFromReboot(view('n', { bootID: 'boot-2', record: rebooting })))
  const back = returnToService(rebooting, T0, 'Ready on boot-2')
  t.match(back, { unschedulable: false, record: { phase: 'verifying', verifySince: iso(T0) } })
})

t.test('proven: the slot is freed and the cooldown starts; not fixed: back to pending for the next rung', async t => {
  const proven = fixProven(record({ phase: 'verifying' }), T0, config)
  t.match(proven.record, { phase: 'cooldown', provenAt: iso(T0), cooldownUntil: iso(T0 + minutes(30)), outcome: 'remediated' })
  t.match(notFixed(record({ phase: 'verifying' }), T0, 're-fired').record, { phase: 'pending', outcome: 'not-fixed' })
})

t.test('the ladder\'s end: drained and held', async t => {
  t.match(drainSucceeded(record({ phase: 'draining', action: 'quarantine', remediations: [{ at: '', action: 'reboot' }, { at: '', action: 'replace' }, { at: '', action: 'quarantine' }] }), T0, 'drained').record, { phase: 'quarantined', reason: /remediated 2 times/ })
  t.match(drainSucceeded(record({ phase: 'draining', action: 'reboot' }), T0, 'drained').record, { phase: 'remediating' })
})

t.test('an operator uncordoning a node we hold is noticed in every holding phase we cordoned', async t => {
  for (const phase of ['cordoned', 'draining', 'rebooting', 'replacing', 'failed', 'quarantined'] as const) {
    t.ok(uncordonedByOperator(view('n', { unschedulable: false, record: record({ phase }) })), phase)
  }
  t.notOk(uncordonedByOperator(view('n', { unschedulable: false, record: record({ phase: 'verifying' }) })), 'verifying: back in service on purpose')
})

t.test('a deferral is rewritten only when its stable words change', async t => {
  const held = record({ phase: 'pending', deferred: { rule: 'budget', reason: 'pool app has no disruption budget left', scope: 'pool=app' } })
  t.equal(deferPending(held, { rule: 'budget', reason: 'pool app has no disruption budget left', scope: 'pool=app' }), undefined)
  t.ok(deferPending(held, { rule: 'semaphore', reason: 'every remediation slot is in use' }))
})
