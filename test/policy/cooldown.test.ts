import t from 'tap'
import { nodeCooldownBlock, poolSpacingBlock } from '../../src/policy/cooldown.ts'
import { iso } from '../../src/time.ts'
import { fleet, fleetOf, minutes, policy, record, T0, view } from '../support/core.ts'

t.test('a node in cooldown is blocked until its end time', async t => {
  const node = view('a', { record: record({ phase: 'cooldown', cooldownUntil: iso(T0 + minutes(5)) }) })
  const block = nodeCooldownBlock(node, T0)
  t.match(block?.reason, /node in cooldown until 2026-11-23T12:05:00.000Z/)
  t.equal(block?.until, T0 + minutes(5))
  t.equal(nodeCooldownBlock(node, T0 + minutes(5)), undefined)
  t.equal(nodeCooldownBlock(view('b'), T0), undefined)
})

t.test('pool spacing counts from the latest start in the same pool only', async t => {
  const config = policy({ poolSpacingMs: minutes(10) })
  const index = fleetOf(fleet({ app: 3, data: 2 }, {
    'app-1': { phase: 'cooldown', startedAt: iso(T0 - minutes(30)) },
    'app-2': { phase: 'draining', startedAt: iso(T0 - minutes(4)) },
    'data-1': { phase: 'healthy', startedAt: iso(T0 - minutes(11)) }
  }).values(), config)
  t.equal(index.lastStart('app'), T0 - minutes(4))
  const block = poolSpacingBlock(index.get('app-3')!, index.lastStart('app'), T0, config)
  t.equal(block?.rule, 'spacing')
  t.match(block?.reason, /next allowed at 2026-11-23T12:06:00.000Z/)
  t.equal(poolSpacingBlock(index.get('data-2')!, index.lastStart('data'), T0, config), undefined)
})
