import fc from 'fast-check'
import t from 'tap'
import { isTimestamp, startTimeKeyword } from '../../src/alerts/webhook.ts'

const pad = (n: number, width = 2) => String(n).padStart(width, '0')

t.test('a timestamp is valid exactly when Date.parse reads back the fields as written', async t => {
  // RFC 3339-shaped strings whose fields range past their limits (month 13, day 31 in April,
  // 29 February, hour 24, second 60, offset 24:00); the oracle is Date itself: parse, undo the
  // offset, and compare every field.
  const parts = fc.record({
    year: fc.integer({ min: 0, max: 9999 }),
    month: fc.integer({ min: 0, max: 13 }),
    day: fc.integer({ min: 0, max: 32 }),
    hour: fc.integer({ min: 0, max: 25 }),
    minute: fc.integer({ min: 0, max: 61 }),
    second: fc.integer({ min: 0, max: 61 }),
    fraction: fc.option(fc.stringMatching(/^[0-9]{1,12}$/), { nil: undefined }),
    separator: fc.constantFrom('T', 't'),
    zone: fc.oneof(fc.constantFrom('Z', 'z'), fc.record({ sign: fc.constantFrom(1, -1), hours: fc.integer({ min: 0, max: 25 }), minutes: fc.integer({ min: 0, max: 61 }) }))
  })
  fc.assert(fc.property(parts, p => {
    const zone = typeof p.zone === 'string' ? p.zone : `${p.zone.sign > 0 ? '+' : '-'}${pad(p.zone.hours)}:${pad(p.zone.minutes)}`
    const text = `${pad(p.year, 4)}-${pad(p.month)}-${pad(p.day)}${p.separator}${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)}${p.fraction === undefined ? '' : `.${p.fraction}`}${zone}`
    const offsetMinutes = typeof p.zone === 'string' ? 0 : p.zone.sign * (p.zone.hours * 60 + p.zone.minutes)
    const ms = Date.parse(text)
    const local = new Date(ms + offsetMinutes * 60_000)
    const readBack = Number.isFinite(ms) && local.getUTCFullYear() === p.year && local.getUTCMonth() + 1 === p.month && local.getUTCDate() === p.day &&
      local.getUTCHours() === p.hour && local.getUTCMinutes() === p.minute && local.getUTCSeconds() === p.second
    return isTimestamp(text) === readBack
  }), { seed: 20261201, numRuns: 50_000 })
})

t.test('calendar and shape examples', async t => {
  for (const text of ['2026-11-23T23:26:42Z', '0001-01-01T00:00:00Z', '2024-02-29T10:00:00Z', '2000-02-29T00:00:00Z', '2026-04-30T00:00:00.123456789+05:30', '2026-12-31t23:59:59z', '2026-01-31T00:00:00-23:59']) {
    t.ok(isTimestamp(text), text)
  }
  for (const text of ['2026-02-30T10:00:00Z', '2026-02-29T10:00:00Z', '2100-02-29T00:00:00Z', '2026-04-31T00:00:00Z', '2026-01-01T24:00:00Z', '2026-01-01T23:59:60Z',
    '2026-01-01T00:00:00', '2026-01-01T00:00:00+0530', '2026-01-01T00:00:00+24:00', '2026-1-01T00:00:00Z', '2026-01-01T00:00Z', '2026-01-01T00:00:00.Z',
    // With a space Date.parse reads '0001-01-01 00:00:00Z' as 2001: refused whatever the year.
    '0001-01-01 00:00:00Z', '2026-01-01 00:00:00Z',
    '2026-01-01', '+002026-01-01T00:00:00Z', '2026-01-01T00:00:00Z ', ' 2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z\n', '２０２６-01-01T00:00:00Z', '']) {
    t.notOk(isTimestamp(text), JSON.stringify(text))
  }
})

t.test('a start time must be after the year 1000: Go\'s zero time is no start time', async t => {
  const { validate } = startTimeKeyword
  t.notOk(validate(true, '0001-01-01T00:00:00Z'))
  t.match(validate.errors, [{ keyword: 'x-start-time', message: /no start time/ }])
  t.notOk(validate(true, '1000-12-31T23:59:59Z'))
  t.ok(validate(true, '1001-01-01T00:00:00Z'))
  t.ok(validate(true, '2026-11-23T23:26:42Z'))
})
