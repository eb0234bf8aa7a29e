// `self-healing-controller status [--url U] [--token-file F] [--all] [--json]`: the fleet as a
// person reads it, from the HTTP API and nothing else.
//
// Exit codes: 0 shown, 1 the API could not be reached or refused (401, …), 2 bad usage.

import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { fetchStatus, StatusApiError } from './api.ts'
import { renderStatus } from './table.ts'

export const STATUS_USAGE = `usage: self-healing-controller status [--url URL] [--token-file FILE] [--all] [--json]
  --url URL          the controller's HTTP API (default http://127.0.0.1:8080)
  --token-file FILE  file holding the bearer token (default: the SHC_TOKEN environment variable)
  --all              list healthy nodes too
  --json             print nodes, budget, pauses and windows as one JSON object`

export interface StatusIO {
  out: (line: string) => void
  err: (line: string) => void
  env: Record<string, string | undefined>
  /** ANSI colours in the table; see colorWanted. */
  color: boolean
  /** The clock "3m ago" counts from. */
  now: () => number
}

/** Colours only for a person at a terminal, and never when NO_COLOR is set (https://no-color.org). */
export function colorWanted (stream: { isTTY?: boolean }, env: Record<string, string | undefined>): boolean {
  return stream.isTTY === true && (env.NO_COLOR ?? '') === ''
}

/** The bearer token from --token-file, else SHC_TOKEN, else none; a string is a usage error. */
async function tokenFrom (file: string | undefined, env: Record<string, string | undefined>): Promise<string | undefined | { error: string }> {
  if (file === undefined) return env.SHC_TOKEN?.trim() || undefined
  let text: string
  try {
    text = (await readFile(file, 'utf8')).trim()
  } catch (err) {
    return { error: `--token-file ${file}: cannot read: ${(err as Error).message}` }
  }
  return text === '' ? { error: `--token-file ${file}: the file is empty` } : text
}

export async function statusCommand (args: string[], io: StatusIO): Promise<number> {
  const usage = (problem: string) => {
    io.err(`status: ${problem}`)
    io.err(STATUS_USAGE)
    return 2
  }
  let values
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        url: { type: 'string', default: 'http://127.0.0.1:8080' },
        'token-file': { type: 'string' },
        all: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false }
      }
    }))
  } catch (err) {
    return usage((err as Error).message)
  }
  if (values.help) {
    io.out(STATUS_USAGE)
    return 0
  }
  let base: URL
  try {
    base = new URL(values.url)
  } catch {
    return usage(`--url ${values.url}: not a URL; expected e.g. http://127.0.0.1:8080`)
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') return usage(`--url ${values.url}: expected an http:// or https:// URL`)
  const token = await tokenFrom(values['token-file'], io.env)
  if (typeof token === 'object') return usage(token.error)

  let report
  try {
    report = await fetchStatus(base, token)
  } catch (err) {
    if (!(err instanceof StatusApiError)) throw err
    io.err(`status: ${err.message}`)
    return 1
  }
  if (values.json) io.out(JSON.stringify(report, null, 2))
  else for (const line of renderStatus(report, { now: io.now(), color: io.color, all: values.all })) io.out(line)
  return 0
}
