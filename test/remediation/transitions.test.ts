import t from 'tap'
import { iso } from '../../src/time.ts'
import { backFromReboot, machineRebooting, startRemediation, uncordonedByOperator } from '../../src/remediation/transitions.ts'
import { minutes, policy, record, T0, view } from '../support/core.ts'

t.test('cordoning remembers the boot the node was on', async t => {
  const change = startRemediation(view('worker-1', { bootID: 'boot-a', record: record({ phase: 'pending' }) }), T0)
  t.equal(change.record.bootID, 'boot-a')
  t.equal(change.unschedulable, true)
})

t.test('a rebooting node is back only when Ready on another boot', async t => {
  const rebooting = record({ phase: 'rebooting', bootID: 'boot-a' })
  const cases: Array<[string, Parameters<typeof view>[1], boolean]> = [
    ['Ready on a new boot', { bootID: 'boot-b', ready: true }, true],
    ['Ready on the same boot (the reboot has not happened yet, or only the kubelet restarted)', { bootID: 'boot-a', ready: true }, false],
    ['new boot, not Ready yet', { bootID: 'boot-b', ready: false }, false],
    ['no boot reported', { bootID: undefined, ready: true }, false]
  ]
  for (const [what, overrides, expected] of cases) t.equal(backFromReboot(view('worker-1', { ...overrides, record: rebooting })), expected, what)
})

t.test('the reboot wait has a deadline, kept when the step is repeated after a restart', async t => {
  const config = policy({ rebootTimeoutMs: minutes(15) })
  const first = machineRebooting(record({ phase: 'remediating' }), T0, config, 'provider x: rebooted')
  t.equal(first.record.phase, 'rebooting')
  t.equal(first.record.rebootDeadline, iso(T0 + minutes(15)))
  t.equal(first.unschedulable, undefined, 'stays cordoned')
  const again = machineRebooting(first.record, T0 + minutes(5), config, 'provider x: rebooted')
  t.equal(again.record.rebootDeadline, first.record.rebootDeadline)
})

t.test('an operator uncordoning a rebooting node is noticed', async t => {
  t.equal(uncordonedByOperator(view('worker-1', { unschedulable: false, record: record({ phase: 'rebooting' }) })), true)
  t.equal(uncordonedByOperator(view('worker-1', { unschedulable: true, record: record({ phase: 'rebooting' }) })), false)
})
