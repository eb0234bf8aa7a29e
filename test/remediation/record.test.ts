import t from 'tap'
import { decodeRecord, encodeRecord, emptyRecord } from '../../src/remediation/record.ts'
import { T0 } from '../support/core.ts'

t.test('records round-trip; anything else is reported, never guessed', async t => {
  const record = emptyRecord(T0, 'uid-1')
  t.same(decodeRecord(encodeRecord(record)).record, record)
  t.match(decodeRecord('{not json').error, /not JSON/)
  t.match(decodeRecord('{"phase":"exploded","since":"x","history":[],"firings":[]}').error, /not a remediation record/)
  t.same(decodeRecord(undefined), {})
})

t.test('a record of the first release (one alert, no uid) is read as one tracked episode', async t => {
  const old = { phase: 'cooldown', since: '2026-11-20T10:00:00.000Z', reason: 'done', firings: [], history: [], alert: { alertname: 'A', fingerprint: 'f', startsAt: '2026-11-20T09:00:00.000Z', status: 'resolved', action: 'replace', source: 'alertmanager' } }
  const { record } = decodeRecord(JSON.stringify(old))
  t.match(record, { phase: 'cooldown', remediations: [], alerts: [{ fingerprint: 'f', action: 'replace', receivedAt: old.since, lastSeen: old.since }] })
  t.equal(record!.uid, undefined, 'adopted by whichever Node object carries it')
})
