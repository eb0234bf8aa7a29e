import { Type, type Static } from 'typebox'

/**
 * RFC 3339 timestamps in the shape that `Date.parse` reads as exactly the instant written: every
 * field within its range (no hour 24, no leap second 60, offsets up to ±23:59), any number of
 * fraction digits. The calendar (day 29–31 of each month) is checked by `isTimestamp`. No space
 * for the `T`, which RFC 3339 tolerates: Date.parse then falls back to a legacy reading in which
 * `0001-01-01 00:00:00Z` is the year 2001.
 */
const timestampShape = /^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])[Tt](?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)$/

const digits = (text: string, from: number, to: number): number => {
  let value = 0
  for (let i = from; i < to; i++) value = value * 10 + text.charCodeAt(i) - 48
  return value
}

function daysInMonth (year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31
}

/**
 * The `date-time` format of the webhook schema. `Date.parse` rolls impossible dates over
 * (`2026-02-30` is 2 March), so they are refused here; the check is one regular expression plus,
 * for days after the 28th only, a little arithmetic: no Date, no allocation, on every alert.
 */
export function isTimestamp (text: string): boolean {
  if (!timestampShape.test(text)) return false
  const day = digits(text, 8, 10)
  return day <= 28 || day <= daysInMonth(digits(text, 0, 4), digits(text, 5, 7))
}

type KeywordError = { keyword: string, params: object, message: string }

function startTime (_enabled: boolean, text: string): boolean {
  if (digits(text, 0, 4) > 1000) return true
  startTime.errors = [{ keyword: startTimeKeyword.keyword, params: {}, message: 'is no start time: a year before 1001 (0001-01-01T00:00:00Z is Go\'s zero time, an unset time)' }]
  return false
}
/** Where the validator reads why the last call said false (a fresh array each time: it adds the path). */
startTime.errors = undefined as KeywordError[] | undefined

/**
 * Schema keyword for `startsAt`: a year up to 1000 is no start time. Go's zero time
 * (`0001-01-01T00:00:00Z`) is what an unset time.Time marshals to; read as a start it would make
 * an alert 2,000 years old and pass every minimum firing age at once. Registered on the
 * validator by the HTTP app; runs after `format`, so it sees only well-formed timestamps.
 */
export const startTimeKeyword = { keyword: 'x-start-time', type: 'string', schemaType: 'boolean', errors: true, validate: startTime } as const

/**
 * Label and annotation maps. Written as additionalProperties rather than Type.Record, whose
 * `patternProperties: {"^.*$": …}` makes the validator run a regular expression per label on
 * every webhook for no check at all.
 */
const StringMap = Type.Unsafe<Record<string, string>>({ type: 'object', additionalProperties: { type: 'string' } })

/**
 * Alertmanager webhook payload, version 4. Unknown fields are accepted: newer Alertmanagers add
 * some (notification_reason, routeLabels) and rejecting them would lose alerts for good, since
 * Alertmanager does not retry a 4xx. Known fields are taken exactly as typed: the validator does
 * not coerce (`["firing"]` is not `"firing"`).
 */
export const WebhookAlert = Type.Object({
  status: Type.Union([Type.Literal('firing'), Type.Literal('resolved')]),
  labels: StringMap,
  annotations: Type.Optional(StringMap),
  startsAt: Type.String({ format: 'date-time', [startTimeKeyword.keyword]: true }),
  /** Go's zero time here means "no end" (what Alertmanager sends for a firing alert). */
  endsAt: Type.Optional(Type.String({ format: 'date-time' })),
  generatorURL: Type.Optional(Type.String()),
  fingerprint: Type.String({ minLength: 1, maxLength: 128 })
})
export type WebhookAlert = Static<typeof WebhookAlert>

export const WebhookPayload = Type.Object({
  version: Type.Literal('4'),
  status: Type.Union([Type.Literal('firing'), Type.Literal('resolved')]),
  receiver: Type.Optional(Type.String()),
  groupKey: Type.Optional(Type.String()),
  truncatedAlerts: Type.Optional(Type.Integer({ minimum: 0 })),
  groupLabels: Type.Optional(StringMap),
  commonLabels: Type.Optional(StringMap),
  commonAnnotations: Type.Optional(StringMap),
  externalURL: Type.Optional(Type.String()),
  alerts: Type.Array(WebhookAlert)
})
export type WebhookPayload = Static<typeof WebhookPayload>
