import t from 'tap'
import { rungFor } from '../../src/policy/ladder.ts'
import { iso } from '../../src/time.ts'
import { minutes, policy, record, T0 } from '../support/core.ts'

const config = policy({ ladder: ['reboot', 'replace'], ladderWindowMs: minutes(24 * 60) })
const started = (...ago: number[]) => record({ remediations: ago.map(m => ({ at: iso(T0 - minutes(m)), action: 'reboot' as const })) })

t.test('remediation="drain" climbs REMEDIATION_LADDER with each remediation within LADDER_WINDOW, then quarantines', async t => {
  t.equal(rungFor(started(), 'ladder', T0, config), 'reboot')
  t.equal(rungFor(started(30), 'ladder', T0, config), 'replace')
  t.equal(rungFor(started(30, 10), 'ladder', T0, config), 'quarantine')
  t.equal(rungFor(started(25 * 60, 30), 'ladder', T0, config), 'replace', 'a remediation outside the window no longer counts')
})

t.test('an explicit action is exactly that action, however often', async t => {
  t.equal(rungFor(started(30, 10, 5), 'reboot', T0, config), 'reboot')
  t.equal(rungFor(started(), 'replace', T0, config), 'replace')
})
