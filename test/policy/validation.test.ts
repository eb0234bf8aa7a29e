import t from 'tap'
import { toNodeAlert } from '../../src/alerts/node-alert.ts'
import { validateAlert } from '../../src/policy/validation.ts'
import { iso } from '../../src/time.ts'
import { alert, minutes, policy, T0, view } from '../support/core.ts'

const config = policy()
const check = (a: ReturnType<typeof alert>, node = view('worker-3')) => validateAlert(toNodeAlert(a, config), node, T0, config)

t.test('a complete, opted-in, current alert for a known node passes', async t => {
  t.equal(check(alert('worker-3')), undefined)
})

t.test('the node name may come from any configured label, in order', async t => {
  const a = alert(undefined, { labels: { kubernetes_node: 'worker-3' } })
  t.equal(toNodeAlert(a, config).node, 'worker-3')
  t.equal(check(a), undefined)
  t.equal(toNodeAlert(alert(undefined, { labels: { kubernetes_node: 'b', node: 'a' } }), config).node, 'a', 'first configured label wins')
})

t.test('fail-open: each kind of incomplete or doubtful data is ignored with its reason', async t => {
  const cases: Array<[string, ReturnType<typeof alert>, RegExp, ReturnType<typeof view> | undefined]> = [
    ['no node label', alert(undefined), /no node label \(looked for node, kubernetes_node\)/, view('worker-3')],
    ['not opted in', alert('worker-3', { labels: { remediation: '' } }), /not opted in/, view('worker-3')],
    ['opt-in label missing', { ...alert('worker-3'), labels: { alertname: 'X', node: 'worker-3' } }, /label remediation is missing/, view('worker-3')],
    ['unknown opt-in value', alert('worker-3', { labels: { remediation: 'delete-everything' } }), /not one of drain, reboot, replace/, view('worker-3')],
    ['node not in cluster', alert('worker-99'), /node worker-99 is not in the cluster/, undefined],
    ['ended in the past', alert('worker-3', { endsAt: iso(T0 - 1000) }), /already ended/, view('worker-3')],
    ['starts in the future beyond skew', alert('worker-3', { startsAt: iso(T0 + config.clockSkewMs + 1000) }), /in the future/, view('worker-3')],
    ['unreadable state annotation', alert('worker-3'), /unreadable state annotation/, view('worker-3', { recordError: 'not JSON' })]
  ]
  for (const [name, a, reason, node] of cases) {
    const block = validateAlert(toNodeAlert(a, config), node, T0, config)
    t.equal(block?.rule, 'validation', name)
    t.match(block?.reason, reason, name)
  }
})

t.test('Go zero time in endsAt means no end; startsAt within the skew is accepted', async t => {
  t.equal(toNodeAlert(alert('worker-3'), config).endsAt, null)
  t.equal(check(alert('worker-3', { startsAt: iso(T0 + config.clockSkewMs - 1000) })), undefined)
  t.equal(check(alert('worker-3', { endsAt: iso(T0 + minutes(5)) })), undefined, 'an end in the future is fine')
})

t.test('Go\'s zero time, or anything before the year 1001, is no start time: never "firing for 2,000 years"', async t => {
  for (const startsAt of ['0001-01-01T00:00:00Z', '1000-12-31T23:59:59Z']) {
    t.match(check(alert('worker-3', { startsAt }))?.reason, /startsAt is not a start time/, startsAt)
  }
  t.equal(check(alert('worker-3', { startsAt: '1001-01-01T00:00:00Z' })), undefined, 'old, but a time')
})

t.test('a resolved alert is validated for its node and opt-in, not for its end', async t => {
  t.equal(check(alert('worker-3', { status: 'resolved', endsAt: iso(T0 - 1000) })), undefined)
  t.match(check(alert('worker-3', { status: 'resolved', labels: { remediation: '' } }))?.reason, /not opted in/)
})
