/**
 * Instants as the decision core writes and reads them: epoch milliseconds in memory, ISO-8601
 * text in records and answers. A module of its own so that policy and records can share it
 * without importing each other.
 */

const isoCache = new Map<number, string>()
/**
 * ISO-8601 text of an epoch-ms time. Cached: a triage formats the same few instants (now, the
 * alerts' starts) thousands of times, and formatting dominated its profile.
 */
export function iso (ms: number): string {
  let text = isoCache.get(ms)
  if (text === undefined) {
    if (isoCache.size >= 4096) isoCache.clear()
    text = new Date(ms).toISOString()
    isoCache.set(ms, text)
  }
  return text
}

const timeCache = new Map<string, number>()
/** Epoch ms of an ISO-8601 text (NaN when it is not one), cached like `iso` and for the same reason. */
export function parseTime (text: string): number {
  let ms = timeCache.get(text)
  if (ms === undefined) {
    if (timeCache.size >= 4096) timeCache.clear()
    ms = Date.parse(text)
    timeCache.set(text, ms)
  }
  return ms
}
