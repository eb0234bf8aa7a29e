import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { StringDecoder } from 'node:string_decoder'
import type { AuditEvent } from '../../test/support/controlplane.ts'

/**
 * One user's requests from the API server's audit log, read incrementally. With thousands of KWOK
 * nodes and tens of thousands of pods the log grows by hundreds of megabytes (every heartbeat,
 * binding and status update is a line), so it is read from where the last read stopped and only
 * lines naming the user are parsed. A request is one event (RequestReceived is not logged), but a
 * watch has two (ResponseStarted, ResponseComplete): count requests by auditID.
 */
export type AuditTail = {
  /** Everything the user did so far (reads what was appended since the last call). */
  events (): AuditEvent[]
  /** The user's requests received within [from, to] (epoch ms), one per auditID. */
  between (from: number, to: number): AuditEvent[]
}

const CHUNK = 8 * 1024 * 1024

export function auditTail (path: string, username: string): AuditTail {
  const needle = JSON.stringify(username)
  const decoder = new StringDecoder('utf8')
  const events: AuditEvent[] = []
  let offset = 0
  let partial = ''
  const buffer = Buffer.allocUnsafe(CHUNK)

  const read = () => {
    const fd = openSync(path, 'r')
    try {
      const size = fstatSync(fd).size
      while (offset < size) {
        const length = readSync(fd, buffer, 0, Math.min(CHUNK, size - offset), offset)
        if (length === 0) break
        offset += length
        const lines = (partial + decoder.write(buffer.subarray(0, length))).split('\n')
        partial = lines.pop()!
        for (const line of lines) {
          if (!line.includes(needle)) continue
          const event = JSON.parse(line) as AuditEvent
          if (event.user.username === username) events.push(event)
        }
      }
    } finally {
      closeSync(fd)
    }
    return events
  }

  return {
    events: read,
    between (from, to) {
      const seen = new Set<string>()
      return read().filter(e => {
        const at = Date.parse(e.requestReceivedTimestamp ?? '')
        if (!(at >= from && at <= to) || seen.has(e.auditID)) return false
        seen.add(e.auditID)
        return true
      })
    }
  }
}

const WRITES = new Set(['create', 'update', 'patch', 'delete', 'deletecollection'])
export const isWrite = (e: AuditEvent) => WRITES.has(e.verb)
export const isLease = (e: AuditEvent) => e.objectRef?.resource === 'leases'

/** `verb resource[/subresource]` → count, most frequent first: what the controller spent its requests on. */
export function byKind (events: readonly AuditEvent[]): Record<string, number> {
  const counts = new Map<string, number>()
  for (const e of events) {
    const resource = e.objectRef?.resource ?? e.requestURI.split('?')[0]
    const key = `${e.verb} ${resource}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ''}`
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return Object.fromEntries([...counts].sort((a, b) => b[1] - a[1]))
}
