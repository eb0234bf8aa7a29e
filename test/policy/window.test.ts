import t from 'tap'
import fc from 'fast-check'
import { describeWindows, isOpen, nextClosing, nextOpening, parseWindows, WindowSpecError, type Windows } from '../../src/policy/window.ts'

const at = (text: string): number => {
  const ms = Date.parse(text)
  if (Number.isNaN(ms)) throw new Error(`bad instant ${text}`)
  return ms
}
const iso = (ms: number | undefined): string | undefined => ms === undefined ? undefined : new Date(ms).toISOString()
const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

t.test('grammar: accepted forms and their normalised text', async t => {
  const cases: Array<[string, string]> = [
    ['', ''],
    ['   ', ''],
    ['Mon-Fri 08:00-18:00 Europe/Berlin; Sat 10:00-12:00 Europe/Berlin', 'Mon-Fri 08:00-18:00 Europe/Berlin; Sat 10:00-12:00 Europe/Berlin'],
    ['  mon - fri   8:00 - 18:00   europe/berlin ', 'Mon-Fri 08:00-18:00 Europe/Berlin'],
    ['Mon, Wed,FRI 22:00-02:00 UTC', 'Mon,Wed,Fri 22:00-02:00 UTC'],
    ['Sat-Mon 00:00-24:00 America/New_York', 'Sat-Mon 00:00-24:00 America/New_York'],
    ['Mon-Tue,Thu 23:30-00:00 Asia/Kolkata', 'Mon-Tue,Thu 23:30-00:00 Asia/Kolkata']
  ]
  for (const [text, normalised] of cases) {
    const windows = parseWindows(text)
    t.equal(describeWindows(windows), normalised, text)
    t.same(parseWindows(describeWindows(windows)), windows, `${text} reads back`)
  }
})

t.test('grammar: days, wrapping ranges, midnight and 24:00', async t => {
  const [weekend] = parseWindows('Sat-Mon 22:00-02:00 UTC')
  t.same(weekend!.days, [true, true, false, false, false, false, true], 'Sat-Mon wraps through Sunday')
  t.equal(weekend!.start, 22 * 60)
  t.equal(weekend!.end, 26 * 60, 'an end before the start is on the next day')
  t.equal(parseWindows('Mon 00:00-24:00 UTC')[0]!.end, 24 * 60)
  t.equal(parseWindows('Mon 22:00-00:00 UTC')[0]!.end, 24 * 60, 'an end at 00:00 is the next midnight')
  t.same(parseWindows('Mon-Sun 09:00-10:00 UTC')[0]!.days, [true, true, true, true, true, true, true])
})

t.test('grammar: bad inputs name the part and say what was expected', async t => {
  const cases: Array<[string, string]> = [
    ['Mon-Fri', 'window 1 "Mon-Fri": expected "DAYS HH:MM-HH:MM ZONE", e.g. "Mon-Fri 08:00-18:00 Europe/Berlin"'],
    ['Mon-Fri 08:00-18:00', 'window 1 "Mon-Fri 08:00-18:00": missing the time zone: expected an IANA name such as Europe/Berlin or UTC after the times'],
    ['Mon 08:00-18:00 UTC; Sat 10:00-12:00 Europe/Berlinn', 'window 2 "Sat 10:00-12:00 Europe/Berlinn": unknown time zone "Europe/Berlinn": expected an IANA name such as Europe/Berlin, America/New_York or UTC'],
    ['Mon 08:00-18:00 +01:00', 'window 1 "Mon 08:00-18:00 +01:00": unknown time zone "+01:00": expected an IANA name such as Europe/Berlin, America/New_York or UTC'],
    ['Mon-Fro 08:00-18:00 UTC', 'window 1 "Mon-Fro 08:00-18:00 UTC": "Mon-Fro" is not a day or a day range: expected Mon, Tue, Wed, Thu, Fri, Sat or Sun, a range such as Mon-Fri, or a list such as Mon,Wed,Fri'],
    ['Monday 08:00-18:00 UTC', 'window 1 "Monday 08:00-18:00 UTC": "Monday" is not a day or a day range: expected Mon, Tue, Wed, Thu, Fri, Sat or Sun, a range such as Mon-Fri, or a list such as Mon,Wed,Fri'],
    ['Mon-Wed-Fri 08:00-18:00 UTC', 'window 1 "Mon-Wed-Fri 08:00-18:00 UTC": "Mon-Wed-Fri" is not a day or a day range: expected Mon, Tue, Wed, Thu, Fri, Sat or Sun, a range such as Mon-Fri, or a list such as Mon,Wed,Fri'],
    ['Mon-Mon 08:00-18:00 UTC', 'window 1 "Mon-Mon 08:00-18:00 UTC": "Mon-Mon" is a range from a day to itself: write Mon for one day or Mon-Sun for the whole week'],
    ['Mon-Fri,Wed 08:00-18:00 UTC', 'window 1 "Mon-Fri,Wed 08:00-18:00 UTC": Wed is listed twice'],
    ['Mon 0800-1800 UTC', 'window 1 "Mon 0800-1800 UTC": start time "0800": expected HH:MM from 00:00 to 23:59'],
    ['Mon 08:00 UTC', 'window 1 "Mon 08:00 UTC": "08:00" is not a time range: expected HH:MM-HH:MM, e.g. 08:00-18:00'],
    ['Mon 08:60-18:00 UTC', 'window 1 "Mon 08:60-18:00 UTC": start time "08:60": expected HH:MM from 00:00 to 23:59'],
    ['Mon 24:00-02:00 UTC', 'window 1 "Mon 24:00-02:00 UTC": start time "24:00": expected HH:MM from 00:00 to 23:59'],
    ['Mon 08:00-24:30 UTC', 'window 1 "Mon 08:00-24:30 UTC": end time "24:30": expected HH:MM from 00:00 to 24:00'],
    ['Mon 08:00-08:00 UTC', 'window 1 "Mon 08:00-08:00 UTC": "08:00-08:00" starts and ends at the same time: write 00:00-24:00 for a whole day'],
    ['Mon 08:00-18:00 UTC extra', 'window 1 "Mon 08:00-18:00 UTC extra": unexpected "extra" after the time zone: separate windows with ";"'],
    ['Mon 08:00-18:00 UTC;', 'window 2 is empty: expected "DAYS HH:MM-HH:MM ZONE" between the ";" separators, e.g. "Mon-Fri 08:00-18:00 Europe/Berlin"'],
    [';', 'window 1 is empty: expected "DAYS HH:MM-HH:MM ZONE" between the ";" separators, e.g. "Mon-Fri 08:00-18:00 Europe/Berlin"']
  ]
  for (const [text, message] of cases) t.throws(() => parseWindows(text), new WindowSpecError(message), text)
})

t.test('no windows: always open, nothing to wait for', async t => {
  const none = parseWindows('')
  t.equal(isOpen(none, at('2026-03-01T03:00:00Z')), true)
  t.equal(nextOpening(none, at('2026-03-01T03:00:00Z')), undefined)
  t.equal(nextClosing(none, at('2026-03-01T03:00:00Z')), undefined)
})

t.test('open and closed at instants in several zones', async t => {
  const office = parseWindows('Mon-Fri 08:00-18:00 Europe/Berlin; Sat 10:00-12:00 Europe/Berlin')
  // Wednesday 2026-01-14 (CET, UTC+1)
  t.equal(isOpen(office, at('2026-01-14T06:59:59Z')), false, '07:59:59 Berlin')
  t.equal(isOpen(office, at('2026-01-14T07:00:00Z')), true, '08:00 Berlin')
  t.equal(isOpen(office, at('2026-01-14T16:59:59Z')), true, '17:59:59 Berlin')
  t.equal(isOpen(office, at('2026-01-14T17:00:00Z')), false, 'the end is exclusive')
  t.equal(isOpen(office, at('2026-01-17T09:30:00Z')), true, 'Saturday 10:30 Berlin')
  t.equal(isOpen(office, at('2026-01-18T09:30:00Z')), false, 'Sunday')

  const tokyo = parseWindows('Mon 09:00-10:00 Asia/Tokyo')
  t.equal(isOpen(tokyo, at('2026-01-12T00:30:00Z')), true, 'Monday 09:30 in Tokyo is 00:30 UTC the same day')
  t.equal(isOpen(tokyo, at('2026-01-11T00:30:00Z')), false, 'Sunday 09:30 Tokyo')

  const honolulu = parseWindows('Fri 20:00-22:00 Pacific/Honolulu')
  t.equal(isOpen(honolulu, at('2026-01-17T06:30:00Z')), true, 'Friday 20:30 Honolulu is Saturday 06:30 UTC')
  t.equal(isOpen(honolulu, at('2026-01-16T06:30:00Z')), false, 'Thursday 20:30 Honolulu')

  const kolkata = parseWindows('Tue 09:00-09:30 Asia/Kolkata')
  t.equal(isOpen(kolkata, at('2026-01-13T03:29:00Z')), false, '08:59 IST (UTC+5:30)')
  t.equal(isOpen(kolkata, at('2026-01-13T03:30:00Z')), true, '09:00 IST')
})

t.test('a window crossing midnight belongs to its start day', async t => {
  const night = parseWindows('Fri 22:00-02:00 UTC')
  t.equal(isOpen(night, at('2026-01-16T21:59:00Z')), false, 'Friday 21:59')
  t.equal(isOpen(night, at('2026-01-16T23:00:00Z')), true, 'Friday 23:00')
  t.equal(isOpen(night, at('2026-01-17T01:59:00Z')), true, 'Saturday 01:59, still Friday\'s window')
  t.equal(isOpen(night, at('2026-01-17T02:00:00Z')), false, 'Saturday 02:00')
  t.equal(isOpen(night, at('2026-01-17T23:00:00Z')), false, 'Saturday night is not listed')
  t.equal(isOpen(night, at('2026-01-16T01:00:00Z')), false, 'Friday 01:00 belongs to Thursday night')
  t.equal(iso(nextClosing(night, at('2026-01-16T23:00:00Z'))), '2026-01-17T02:00:00.000Z')
  t.equal(iso(nextOpening(night, at('2026-01-17T02:00:00Z'))), '2026-01-23T22:00:00.000Z')
})

t.test('the next opening across a weekend, and across a DST change', async t => {
  const office = parseWindows('Mon-Fri 09:00-17:00 America/New_York')
  // Friday 2026-03-06 18:00 EST; the clocks go forward on Sunday 2026-03-08
  t.equal(iso(nextOpening(office, at('2026-03-06T23:00:00Z'))), '2026-03-09T13:00:00.000Z', 'Monday 09:00 EDT')
  t.equal(iso(nextOpening(office, at('2026-03-09T13:00:00Z'))), '2026-03-09T13:00:00.000Z', 'open now: now')
  t.equal(iso(nextClosing(office, at('2026-03-09T13:00:00Z'))), '2026-03-09T21:00:00.000Z', 'Monday 17:00 EDT')
  t.equal(iso(nextClosing(office, at('2026-03-09T22:00:00Z'))), '2026-03-09T22:00:00.000Z', 'closed now: now')
})

t.test('Europe/Berlin spring forward: 2026-03-29 02:00 CET becomes 03:00 CEST (01:00 UTC)', async t => {
  const intoGap = parseWindows('Sun 02:30-04:00 Europe/Berlin')
  t.equal(isOpen(intoGap, at('2026-03-29T00:59:59Z')), false, '01:59:59 CET')
  t.equal(iso(nextOpening(intoGap, at('2026-03-29T00:00:00Z'))), '2026-03-29T01:00:00.000Z', 'opens when the clock jumps to 03:00')
  t.equal(iso(nextClosing(intoGap, at('2026-03-29T01:00:00Z'))), '2026-03-29T02:00:00.000Z', '04:00 CEST')

  const inGap = parseWindows('Sun 02:00-02:30 Europe/Berlin')
  t.equal(iso(nextOpening(inGap, at('2026-03-22T02:00:00Z'))), '2026-04-05T00:00:00.000Z', 'no 02:00-02:30 on 29 March: the next Sunday, in CEST')

  const acrossGap = parseWindows('Sun 01:00-05:00 Europe/Berlin')
  const open = nextOpening(acrossGap, at('2026-03-28T12:00:00Z'))!
  t.equal(iso(open), '2026-03-29T00:00:00.000Z')
  t.equal(nextClosing(acrossGap, open)! - open, 3 * HOUR, 'four wall-clock hours, three real ones')
})

t.test('Europe/Berlin fall back: 2026-10-25 03:00 CEST becomes 02:00 CET (01:00 UTC)', async t => {
  const fromOverlap = parseWindows('Sun 02:30-04:00 Europe/Berlin')
  t.equal(iso(nextOpening(fromOverlap, at('2026-10-24T12:00:00Z'))), '2026-10-25T00:30:00.000Z', 'the first 02:30 (CEST)')
  t.equal(isOpen(fromOverlap, at('2026-10-25T01:15:00Z')), true, '02:15 CET, the repeated hour: still open')
  t.equal(iso(nextClosing(fromOverlap, at('2026-10-25T00:30:00Z'))), '2026-10-25T03:00:00.000Z', '04:00 CET')

  const intoOverlap = parseWindows('Sun 01:00-02:30 Europe/Berlin')
  t.equal(iso(nextOpening(intoOverlap, at('2026-10-24T12:00:00Z'))), '2026-10-24T23:00:00.000Z', '01:00 CEST')
  t.equal(iso(nextClosing(intoOverlap, at('2026-10-24T23:00:00Z'))), '2026-10-25T00:30:00.000Z', 'the first 02:30')
  t.equal(isOpen(intoOverlap, at('2026-10-25T01:15:00Z')), false, 'the second 02:15 (CET) is past the close')

  const acrossOverlap = parseWindows('Sun 00:00-06:00 Europe/Berlin')
  const open = nextOpening(acrossOverlap, at('2026-10-24T12:00:00Z'))!
  t.equal(nextClosing(acrossOverlap, open)! - open, 7 * HOUR, 'six wall-clock hours, seven real ones')
})

t.test('America/New_York: spring forward 2026-03-08 (07:00 UTC), fall back 2026-11-01 (06:00 UTC)', async t => {
  const early = parseWindows('Sun 02:15-02:45 America/New_York')
  t.equal(iso(nextOpening(early, at('2026-03-08T00:00:00Z'))), '2026-03-15T06:15:00.000Z', 'wholly in the gap on 8 March: the next Sunday, in EDT')
  t.equal(isOpen(early, at('2026-03-08T07:20:00Z')), false, '03:20 EDT')

  const repeated = parseWindows('Sun 01:30-01:45 America/New_York')
  t.equal(iso(nextOpening(repeated, at('2026-11-01T00:00:00Z'))), '2026-11-01T05:30:00.000Z', '01:30 EDT, the first pass')
  t.equal(isOpen(repeated, at('2026-11-01T05:40:00Z')), true, '01:40 EDT')
  t.equal(isOpen(repeated, at('2026-11-01T06:35:00Z')), false, '01:35 EST, the second pass')
  t.equal(iso(nextOpening(repeated, at('2026-11-01T05:45:00Z'))), '2026-11-08T06:30:00.000Z', 'the next Sunday, in EST')
})

t.test('overlapping and touching windows close together', async t => {
  const windows = parseWindows('Mon 08:00-12:00 UTC; Mon 12:00-14:00 UTC; Mon 13:00-15:00 Europe/London')
  // January: London is on UTC
  t.equal(iso(nextClosing(windows, at('2026-01-12T09:00:00Z'))), '2026-01-12T15:00:00.000Z')
  t.equal(nextClosing(parseWindows('Mon-Sun 00:00-24:00 UTC'), at('2026-01-12T09:00:00Z')), undefined, 'never closes')
  t.equal(nextClosing(parseWindows('Sat-Fri 00:00-24:00 Asia/Tokyo'), at('2026-01-12T09:00:00Z')), undefined, 'never closes, day by day')
})

// Property: the answers agree with each other and, away from offset changes, with a plain
// wall-clock reading done here independently of the module.
const zones = ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Sydney', 'Asia/Kolkata', 'Australia/Lord_Howe']
const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']
const clock = (minutes: number) => `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`
const windowText = fc.record({
  days: fc.uniqueArray(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 7 }),
  start: fc.integer({ min: 0, max: 24 * 4 - 1 }).map(q => q * 15),
  length: fc.integer({ min: 1, max: 24 * 4 - 1 }).map(q => q * 15),
  zone: fc.constantFrom(...zones)
}).map(w => {
  const end = w.start + w.length
  return `${w.days.map(d => days[d]).join(',')} ${clock(w.start)}-${end === 24 * 60 ? '24:00' : clock(end % (24 * 60))} ${w.zone}`
})
const spec = fc.array(windowText, { minLength: 1, maxLength: 3 }).map(ws => ws.join('; '))
// Instants in 2025-2028, half of them within a day of a DST change in one of the zones.
const transitions = ['2026-03-29T01:00:00Z', '2026-10-25T01:00:00Z', '2026-03-08T07:00:00Z', '2026-11-01T06:00:00Z', '2026-04-04T16:00:00Z', '2026-10-03T16:00:00Z', '2026-04-04T15:00:00Z'].map(at)
const instant = fc.oneof(
  fc.integer({ min: at('2025-01-01T00:00:00Z'), max: at('2028-12-31T00:00:00Z') }),
  fc.tuple(fc.constantFrom(...transitions), fc.integer({ min: -DAY, max: DAY })).map(([a, b]) => a + b)
)

const wallFormat = new Map<string, Intl.DateTimeFormat>()
function wallClock (zone: string, ms: number): { weekday: number, minute: number } {
  if (!wallFormat.has(zone)) wallFormat.set(zone, new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', weekday: 'short', hour: '2-digit', minute: '2-digit' }))
  const parts = Object.fromEntries(wallFormat.get(zone)!.formatToParts(ms).map(p => [p.type, p.value]))
  return { weekday: days.indexOf(parts.weekday!), minute: Number(parts.hour) * 60 + Number(parts.minute) }
}
const offset = (zone: string, ms: number) => new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'longOffset' }).formatToParts(ms).find(p => p.type === 'timeZoneName')!.value
function plainReading (windows: Windows, ms: number): boolean | undefined {
  let open = false
  for (const w of windows) {
    if (offset(w.zone, ms - 2 * DAY) !== offset(w.zone, ms + 2 * DAY)) return undefined
    const { weekday, minute } = wallClock(w.zone, ms)
    const yesterday = (weekday + 6) % 7
    if ((w.days[weekday] && w.start <= minute && minute < w.end) || (w.days[yesterday] && minute + 24 * 60 < w.end)) open = true
  }
  return open
}

t.test('property: isOpen, nextOpening and nextClosing agree, and match the wall clock away from DST changes', async t => {
  let compared = 0
  fc.assert(fc.property(spec, instant, fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 8, maxLength: 8 }), (text, now, fractions) => {
    const windows = parseWindows(text)
    if (describeWindows(parseWindows(describeWindows(windows))) !== describeWindows(windows)) return false
    const opening = nextOpening(windows, now)
    const closing = nextClosing(windows, now)
    if (opening === undefined) return false
    const open = isOpen(windows, now)
    if (open !== (opening === now)) return false
    if (!isOpen(windows, opening)) return false
    for (const f of fractions) { const sample = now + Math.floor(f * (opening - now)); if (sample < opening && isOpen(windows, sample)) return false }
    if (closing !== undefined) {
      if (open !== (closing > now)) return false
      if (isOpen(windows, closing)) return false
      for (const f of fractions) { const sample = now + Math.floor(f * (closing - now)); if (sample < closing && !isOpen(windows, sample)) return false }
    }
    const plain = plainReading(windows, now)
    if (plain !== undefined) { compared++; if (plain !== open) return false }
    return true
  }), { seed: 20261201, numRuns: 600 })
  t.ok(compared > 200, `compared with the plain wall-clock reading ${compared} times`)
})
