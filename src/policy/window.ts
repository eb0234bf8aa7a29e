// Maintenance windows (REMEDIATION_WINDOWS): the hours in which a new remediation may start.
// Pure: no I/O, no timers, no clock of its own — every question takes the instant to ask about
// (its only state is a memo of time-zone conversions).
//
// Grammar (whitespace between tokens is free; spaces around "-" and "," are ignored):
//
//   spec   = ""                          blank: no restriction, always open
//          | window *( ";" window )      open while any window is open
//   window = days SP time "-" time SP zone
//   days   = item *( "," item )          a day may be listed once per window
//   item   = day | day "-" day           a range runs forward and may wrap: Sat-Mon = Sat, Sun, Mon
//   day    = Mon | Tue | Wed | Thu | Fri | Sat | Sun      (any letter case)
//   time   = H:MM or HH:MM, 00:00 to 23:59; an end may also be 24:00
//   zone   = an IANA time-zone name known to Intl: Europe/Berlin, America/New_York, UTC
//
// Meaning. On each listed day a window opens at its start and closes at its end, both read on the
// wall clock of its zone. An end at or before the start runs past midnight: the window closes at
// that time on the next day and still belongs to its start day (`Fri 22:00-02:00` is Friday 22:00
// to Saturday 02:00; it does not open on Saturday night). A start equal to the end is refused
// (empty or 24 hours?); a whole day is `00:00-24:00`.
//
// Daylight saving. A window opens at the first instant the zone's clock shows its start time (or
// later) on that day, and closes at the first instant it shows its end time (or later). So in a
// spring-forward gap a window starting inside the gap opens when the clock jumps (02:30 → at
// 03:00), a window lying wholly inside the gap does not open that day, and in a fall-back overlap
// the first pass of the repeated hour counts (01:00-02:30 closes at the first 02:30; 02:30-04:00
// opens at the first 02:30 and stays open through the repeated hour). Windows are wall-clock
// hours: 00:00-06:00 lasts 5 hours on the spring-forward day and 7 on the fall-back day.

const MINUTE = 60_000
const DAY = 86_400_000
/** How far nextOpening and nextClosing look; a weekly schedule always changes well within it. */
const LOOKAHEAD_DAYS = 14

/** Day names indexed like Date#getUTCDay: Sunday = 0. */
const dayNames = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const

export interface MaintenanceWindow {
  /** The window in normalised form, as describeWindows prints it (and parseWindows reads it back). */
  readonly text: string
  /** Indexed by day of the week, Sunday = 0: whether the window opens on that day. */
  readonly days: readonly boolean[]
  /** Minutes after the opening day's local midnight: 0 ≤ start < 1440. */
  readonly start: number
  /** Minutes after the opening day's local midnight: start < end ≤ start + 1440 (past 1440 is the next day). */
  readonly end: number
  /** The IANA time-zone name the times are read in, as written (in Intl's letter case). */
  readonly zone: string
}

/** A parsed REMEDIATION_WINDOWS; empty means no restriction. */
export type Windows = readonly MaintenanceWindow[]

/** A REMEDIATION_WINDOWS text that does not follow the grammar; the message names the part and what was expected. */
export class WindowSpecError extends Error {
  override name = 'WindowSpecError'
}

const example = 'Mon-Fri 08:00-18:00 Europe/Berlin'

export function parseWindows (text: string): Windows {
  if (text.trim() === '') return []
  return text.split(';').map((part, index) => parseWindow(part, index + 1))
}

function parseWindow (part: string, position: number): MaintenanceWindow {
  const written = part.trim()
  if (written === '') throw new WindowSpecError(`window ${position} is empty: expected "DAYS HH:MM-HH:MM ZONE" between the ";" separators, e.g. "${example}"`)
  const fail = (problem: string) => new WindowSpecError(`window ${position} "${written}": ${problem}`)
  const [daysText, timesText, zoneText, ...extra] = written.replace(/\s*([-,])\s*/g, '$1').split(/\s+/)
  if (timesText === undefined) throw fail(`expected "DAYS HH:MM-HH:MM ZONE", e.g. "${example}"`)
  if (zoneText === undefined) throw fail('missing the time zone: expected an IANA name such as Europe/Berlin or UTC after the times')
  if (extra.length > 0) throw fail(`unexpected "${extra.join(' ')}" after the time zone: separate windows with ";"`)
  const days = parseDays(daysText!, fail)
  const times = parseTimes(timesText, fail)
  const zone = resolveZone(zoneText, fail)
  return { text: `${days.text} ${times.text} ${zone}`, days: days.listed, start: times.start, end: times.end, zone }
}

function dayIndex (name: string): number | undefined {
  const index = dayNames.findIndex(day => day.toLowerCase() === name.toLowerCase())
  return index === -1 ? undefined : index
}

function parseDays (text: string, fail: (problem: string) => Error): { listed: boolean[], text: string } {
  const listed = new Array<boolean>(7).fill(false)
  const items: string[] = []
  for (const item of text.split(',')) {
    const ends = item.split('-')
    const indexes = ends.map(dayIndex)
    if (ends.length > 2 || indexes.some(index => index === undefined)) {
      throw fail(`"${item}" is not a day or a day range: expected Mon, Tue, Wed, Thu, Fri, Sat or Sun, a range such as Mon-Fri, or a list such as Mon,Wed,Fri`)
    }
    const from = indexes[0]!
    const to = indexes[1] ?? from
    if (ends.length === 2 && from === to) throw fail(`"${item}" is a range from a day to itself: write ${dayNames[from]} for one day or Mon-Sun for the whole week`)
    for (let day = from; ; day = (day + 1) % 7) {
      if (listed[day]) throw fail(`${dayNames[day]} is listed twice`)
      listed[day] = true
      if (day === to) break
    }
    items.push(ends.length === 2 ? `${dayNames[from]}-${dayNames[to]}` : dayNames[from]!)
  }
  return { listed, text: items.join(',') }
}

/** Minutes after midnight, or undefined when `text` is not H:MM / HH:MM up to 24:00. */
function minutesOf (text: string): number | undefined {
  const match = /^(\d{1,2}):(\d{2})$/.exec(text)
  if (match === null) return undefined
  const hours = Number(match[1])
  const minutes = Number(match[2])
  if (minutes > 59 || hours > 24 || (hours === 24 && minutes !== 0)) return undefined
  return hours * 60 + minutes
}

const clock = (minutes: number): string => `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`

function parseTimes (text: string, fail: (problem: string) => Error): { start: number, end: number, text: string } {
  const ends = text.split('-')
  if (ends.length !== 2) throw fail(`"${text}" is not a time range: expected HH:MM-HH:MM, e.g. 08:00-18:00`)
  const [startText, endText] = ends as [string, string]
  const start = minutesOf(startText)
  const end = minutesOf(endText)
  if (start === undefined || start === 24 * 60) throw fail(`start time "${startText}": expected HH:MM from 00:00 to 23:59`)
  if (end === undefined) throw fail(`end time "${endText}": expected HH:MM from 00:00 to 24:00`)
  if (start === end) throw fail(`"${text}" starts and ends at the same time: write 00:00-24:00 for a whole day`)
  return { start, end: end > start ? end : end + 24 * 60, text: `${clock(start)}-${clock(end)}` }
}

/** One formatter per zone: constructing an Intl.DateTimeFormat costs far more than using one. */
const formatters = new Map<string, Intl.DateTimeFormat>()

function formatterFor (zone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(zone)
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric'
    })
    formatters.set(zone, formatter)
  }
  return formatter
}

function resolveZone (text: string, fail: (problem: string) => Error): string {
  const unknown = () => fail(`unknown time zone "${text}": expected an IANA name such as Europe/Berlin, America/New_York or UTC`)
  // Intl also takes offsets such as +01:00; they are not names and know no daylight saving.
  if (!/^[A-Za-z]/.test(text)) throw unknown()
  let resolved: string
  try {
    resolved = formatterFor(text).resolvedOptions().timeZone
  } catch (err) {
    if (err instanceof RangeError) throw unknown()
    throw err
  }
  // Fix the letter case (europe/berlin), but keep a name ICU maps to an older one (Asia/Kolkata → Asia/Calcutta).
  return resolved.toLowerCase() === text.toLowerCase() ? resolved : text
}

/** The en-US h23 form: "3/29/2026, 03:00:00". */
const formatted = /^(\d+)\/(\d+)\/(\d+), (\d+):(\d+):(\d+)$/

/** The wall-clock reading of `instant` in `zone`, as milliseconds since 1970-01-01 00:00 on that clock. */
function wallOf (zone: string, instant: number): number {
  const text = formatterFor(zone).format(instant)
  const match = formatted.exec(text)
  if (match === null) throw new Error(`unexpected Intl date format "${text}" for ${zone}`)
  const [month, day, year, hour, minute, second] = match.slice(1).map(Number) as [number, number, number, number, number, number]
  return Date.UTC(year, month - 1, day, hour, minute, second) + ((instant % 1000) + 1000) % 1000
}

/**
 * Remembered answers of computeInstantOf: the same openings and closings are asked for on every
 * decision of the day, and each costs several Intl calls. The answer is a function of the key
 * alone, so it never goes stale; the oldest entry makes room.
 */
const instants = new Map<string, number>()
const INSTANTS_KEPT = 4096

function instantOf (zone: string, wall: number): number {
  const key = `${zone} ${wall}`
  let instant = instants.get(key)
  if (instant === undefined) {
    instant = computeInstantOf(zone, wall)
    if (instants.size >= INSTANTS_KEPT) instants.delete(instants.keys().next().value!)
    instants.set(key, instant)
  }
  return instant
}

/**
 * The first instant at which the clock of `zone` shows `wall` or later. The candidates are `wall`
 * read with the offset in force a day before and a day after (the zone changes its offset at most
 * once in between); a candidate is exact if the clock shows `wall` then, and with two (a fall-back
 * overlap) the earlier pass counts. With none, the clock jumps over `wall`, and the jump itself is
 * the first instant showing a later time: found by bisection between the candidates.
 */
function computeInstantOf (zone: string, wall: number): number {
  const early = wall - (wallOf(zone, wall - DAY) - (wall - DAY))
  const late = wall - (wallOf(zone, wall + DAY) - (wall + DAY))
  const exact = (early === late ? [early] : [early, late]).filter(instant => wallOf(zone, instant) === wall)
  if (exact.length > 0) return Math.min(...exact)
  let before = Math.min(early, late)
  let after = Math.max(early, late)
  while (after - before > 1) {
    const middle = Math.floor((before + after) / 2)
    if (wallOf(zone, middle) >= wall) after = middle
    else before = middle
  }
  return after
}

/** Sunday = 0 for a wall-clock time in ms since 1970-01-01 (a Thursday). */
const weekday = (wall: number): number => ((Math.floor(wall / DAY) + 4) % 7 + 7) % 7

/** The [open, close) instants of `window` on the local days from `first` to `last` relative to the local day of `now`, in order. */
function openings (window: MaintenanceWindow, now: number, first: number, last: number): Array<[number, number]> {
  const today = Math.floor(wallOf(window.zone, now) / DAY) * DAY
  const result: Array<[number, number]> = []
  for (let offset = first; offset <= last; offset++) {
    const midnight = today + offset * DAY
    if (!window.days[weekday(midnight)]) continue
    const open = instantOf(window.zone, midnight + window.start * MINUTE)
    const close = instantOf(window.zone, midnight + window.end * MINUTE)
    if (close > open) result.push([open, close])
  }
  return result
}

/**
 * Whether a new remediation may start at `now`. A window is at most 24 hours long, so only those
 * of yesterday, today and tomorrow (a clock turned back over midnight) can hold `now`.
 */
export function isOpen (windows: Windows, now: number): boolean {
  if (windows.length === 0) return true
  return windows.some(window => openings(window, now, -1, 1).some(([open, close]) => open <= now && now < close))
}

/** All openings of all windows from yesterday to past the lookahead, ordered by opening time. */
function upcoming (windows: Windows, now: number): Array<[number, number]> {
  return windows.flatMap(window => openings(window, now, -1, LOOKAHEAD_DAYS + 2)).sort((a, b) => a[0] - b[0])
}

/**
 * The first instant at or after `now` at which some window is open: `now` itself when open now.
 * Undefined when there are no windows (always open), or when none opens within 14 days (which a
 * parsed weekly schedule cannot do).
 */
export function nextOpening (windows: Windows, now: number): number | undefined {
  if (windows.length === 0) return undefined
  let first = Infinity
  for (const [open, close] of upcoming(windows, now)) if (close > now) first = Math.min(first, Math.max(open, now))
  return first <= now + LOOKAHEAD_DAYS * DAY ? first : undefined
}

/**
 * The first instant at or after `now` at which no window is open: `now` itself when closed now;
 * windows that overlap or touch count as one. Undefined when there are no windows, or when the
 * windows together stay open for more than 14 days (e.g. `Mon-Sun 00:00-24:00 UTC`).
 */
export function nextClosing (windows: Windows, now: number): number | undefined {
  if (windows.length === 0) return undefined
  let end = now
  for (const [open, close] of upcoming(windows, now)) {
    if (open > end) break
    end = Math.max(end, close)
  }
  return end <= now + LOOKAHEAD_DAYS * DAY ? end : undefined
}

/** The normalised REMEDIATION_WINDOWS text; parseWindows reads it back to the same windows. "" = always open. */
export function describeWindows (windows: Windows): string {
  return windows.map(window => window.text).join('; ')
}
