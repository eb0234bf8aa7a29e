// Time-scales the project's Prometheus rule files so end-to-end tests and the lab see an alert
// within a minute instead of 15. A pure text-to-text transformation of the SAME files in
// alert-rules/: every duration (range windows, subquery ranges, `offset`, `for`,
// `keep_firing_for`, a group's `interval`) is divided by `factor`, and every sample-count guard
// (`count_over_time(x[W]) >= N`) is rescaled so it still asks for the same share of a window's
// samples at the new scrape interval. promtool's unit tests cover the real durations.
//
//   node scripts/rules/time-scale.ts --factor 30 --scrape-interval 1s alert-rules/node-remediation.rules.yml

import { readFileSync } from 'node:fs'
import { isMap, isScalar, isSeq, parseDocument } from 'yaml'

export type TimeScale = {
  /** Every duration is divided by this (30: 5m → 10s). */
  factor: number
  /** The scrape interval the scaled rules will see (Prometheus duration, e.g. `1s`). */
  scrapeInterval: string
  /** The scrape interval the rules' guards were written for. Default `30s` (alert-rules/README.md). */
  contractScrapeInterval?: string
}

export type ScaledRules = { text: string, changes: string[] }

const UNITS: Array<[string, number]> = [['y', 365 * 86_400_000], ['w', 7 * 86_400_000], ['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]]
// Prometheus' duration grammar: units in this order, each at most once.
const DURATION = '(?:\\d+y)?(?:\\d+w)?(?:\\d+d)?(?:\\d+h)?(?:\\d+m(?!s))?(?:\\d+s)?(?:\\d+ms)?'
const WHOLE = new RegExp(`^${DURATION}$`)

/** Milliseconds of a Prometheus duration (`1h30m`, `10s`, `500ms`); throws on anything else. */
export function parsePromDuration (text: string): number {
  const trimmed = text.trim()
  if (trimmed === '0') return 0
  if (trimmed === '' || !WHOLE.test(trimmed)) throw new Error(`not a Prometheus duration: ${JSON.stringify(text)}`)
  let ms = 0
  for (const [, amount, unit] of trimmed.matchAll(/(\d+)(ms|y|w|d|h|m|s)/g)) ms += Number(amount) * UNITS.find(([u]) => u === unit)![1]
  return ms
}

/** The shortest Prometheus spelling of a duration in milliseconds (`90000` → `1m30s`). */
export function formatPromDuration (ms: number): string {
  if (!Number.isInteger(ms) || ms < 0) throw new Error(`not a whole number of milliseconds: ${ms}`)
  if (ms === 0) return '0s'
  let rest = ms
  let out = ''
  for (const [unit, size] of UNITS) {
    const n = Math.floor(rest / size)
    if (n > 0) out += `${n}${unit}`
    rest -= n * size
  }
  return out
}

function checkFactor (factor: number): void {
  if (!Number.isFinite(factor) || factor <= 0) throw new Error(`time-scale factor must be a positive number, got ${factor}`)
}

/** Divides a duration by factor; rounds to whole milliseconds, never down to zero. */
export function scaleDuration (text: string, factor: number): string {
  checkFactor(factor)
  const ms = parsePromDuration(text)
  if (ms === 0) return '0s'
  return formatPromDuration(Math.max(1, Math.round(ms / factor)))
}

/**
 * The new N of a `count_over_time(x[W]) >= N` guard: the same fraction of the window's expected
 * samples. Rounded down, so the scaled guard tolerates at least as many missed scrapes.
 */
export function scaleGuard (n: number, scale: TimeScale): number {
  checkFactor(scale.factor)
  const before = parsePromDuration(scale.contractScrapeInterval ?? '30s')
  const after = parsePromDuration(scale.scrapeInterval)
  if (before <= 0 || after <= 0) throw new Error('scrape intervals must be positive')
  return Math.max(1, Math.floor(n * before / (scale.factor * after) + 1e-9))
}

/** [start, end) of every string literal and comment in a PromQL expression: text no rewrite may touch. */
function opaqueRanges (expr: string): Array<[number, number]> {
  const ranges: Array<[number, number]> = []
  let i = 0
  while (i < expr.length) {
    const c = expr[i]!
    if (c === '"' || c === "'" || c === '`') {
      const start = i++
      // Raw (backtick) strings have no escapes.
      while (i < expr.length && expr[i] !== c) i += c !== '`' && expr[i] === '\\' ? 2 : 1
      ranges.push([start, ++i])
    } else if (c === '#') {
      const start = i
      while (i < expr.length && expr[i] !== '\n') i++
      ranges.push([start, i])
    } else {
      i++
    }
  }
  return ranges
}

type Edit = { start: number, end: number, text: string, what: string }

/**
 * Rewrites one PromQL expression. Returns the new expression and a line per change. Throws when a
 * scaled guard could never be met (it would ask for more samples than the scaled window holds).
 */
export function scaleExpr (expr: string, scale: TimeScale): { expr: string, changes: string[] } {
  checkFactor(scale.factor)
  const opaque = opaqueRanges(expr)
  const inOpaque = (pos: number) => opaque.some(([s, e]) => pos >= s && pos < e)
  const edits: Edit[] = []
  const duration = (text: string) => scaleDuration(text, scale.factor)

  // Range selectors and subqueries: [5m], [1h:30s], [5m:].
  for (const m of expr.matchAll(new RegExp(`\\[(\\s*)(${DURATION})(\\s*)(?::(\\s*)(${DURATION})?(\\s*))?\\]`, 'g'))) {
    if (inOpaque(m.index) || m[2] === '') continue
    const [, s1 = '', range = '', s2 = '', s3, step, s4 = ''] = m
    const sub = m[0].includes(':') ? `:${s3 ?? ''}${step ? duration(step) : ''}${s4}` : ''
    const text = `[${s1}${duration(range)}${s2}${sub}]`
    edits.push({ start: m.index, end: m.index + m[0].length, text, what: `${m[0]} → ${text}` })
  }
  // offset 5m (also offset -5m).
  for (const m of expr.matchAll(new RegExp(`\\boffset(\\s+)(-?)(${DURATION})(?![\\w.])`, 'g'))) {
    if (inOpaque(m.index) || m[3] === '') continue
    const text = `offset${m[1]}${m[2]}${duration(m[3]!)}`
    edits.push({ start: m.index, end: m.index + m[0].length, text, what: `${m[0]} → ${text}` })
  }
  // Sample-count guards: count_over_time( ... ) >= N, with the call's parentheses balanced
  // outside string literals (the device regexes contain parentheses).
  for (const m of expr.matchAll(/\bcount_over_time\s*\(/g)) {
    if (inOpaque(m.index)) continue
    let depth = 1
    let i = m.index + m[0].length
    for (; i < expr.length && depth > 0; i++) {
      if (inOpaque(i)) continue
      if (expr[i] === '(') depth++
      else if (expr[i] === ')') depth--
    }
    if (depth !== 0) throw new Error(`unbalanced parentheses after count_over_time in: ${expr}`)
    const comparison = /^(\s*(?:>=|>)\s*)(\d+(?:\.\d+)?)(?![\w.])/.exec(expr.slice(i))
    if (comparison === null) continue
    const n = Number(comparison[2])
    const scaled = scaleGuard(n, scale)
    const inner = expr.slice(m.index, i)
    const window = new RegExp(`\\[\\s*(${DURATION})\\s*\\]`).exec(inner)
    if (window !== null && window[1] !== '') {
      const samples = Math.floor(parsePromDuration(duration(window[1]!)) / parsePromDuration(scale.scrapeInterval))
      if (scaled > samples) {
        throw new Error(`guard count_over_time(...[${window[1]}]) >= ${n} becomes >= ${scaled}, more than the ${samples} samples a scaled window holds at ${scale.scrapeInterval}`)
      }
    }
    const start = i + comparison[1]!.length
    edits.push({ start, end: start + comparison[2]!.length, text: String(scaled), what: `count_over_time(...) >= ${n} → >= ${scaled}` })
  }
  edits.sort((a, b) => b.start - a.start)
  let out = expr
  for (const edit of edits) out = out.slice(0, edit.start) + edit.text + out.slice(edit.end)
  return { expr: out, changes: edits.reverse().map(e => e.what) }
}

/** Rewrites a whole rule file (Prometheus `groups:` format), keeping its comments and layout. */
export function timeScaleRules (source: string, scale: TimeScale, origin = 'rule file'): ScaledRules {
  checkFactor(scale.factor)
  parsePromDuration(scale.scrapeInterval)
  const doc = parseDocument(source)
  if (doc.errors.length > 0) throw new Error(`${origin}: ${doc.errors[0]!.message}`)
  const groups = doc.get('groups', true)
  if (!isSeq(groups)) throw new Error(`${origin}: no groups list`)
  const changes: string[] = []
  const scaleField = (map: unknown, key: string, where: string) => {
    if (!isMap(map)) return
    const node = map.get(key, true)
    if (node === undefined) return
    if (!isScalar(node) || typeof node.value !== 'string') throw new Error(`${origin}: ${where}: ${key} is not a duration`)
    const before = node.value
    node.value = scaleDuration(before, scale.factor)
    changes.push(`${where}: ${key} ${before} → ${node.value}`)
  }
  for (const group of groups.items) {
    if (!isMap(group)) throw new Error(`${origin}: a group is not a mapping`)
    const groupName = String(group.get('name'))
    scaleField(group, 'interval', `group ${groupName}`)
    const rules = group.get('rules', true)
    if (!isSeq(rules)) continue
    for (const rule of rules.items) {
      if (!isMap(rule)) throw new Error(`${origin}: group ${groupName}: a rule is not a mapping`)
      const where = `${groupName}/${String(rule.get('alert') ?? rule.get('record'))}`
      scaleField(rule, 'for', where)
      scaleField(rule, 'keep_firing_for', where)
      const expr = rule.get('expr', true)
      if (!isScalar(expr)) throw new Error(`${origin}: ${where}: expr is not a string`)
      const scaled = scaleExpr(String(expr.value), scale)
      expr.value = scaled.expr
      changes.push(...scaled.changes.map(c => `${where}: ${c}`))
    }
  }
  const note = ` GENERATED by scripts/rules/time-scale.ts from ${origin}: every duration divided by ${scale.factor},` +
    ` sample-count guards for a ${scale.scrapeInterval} scrape. For tests and the lab only.`
  doc.commentBefore = doc.commentBefore ? `${note}\n\n${doc.commentBefore}` : note
  return { text: doc.toString({ lineWidth: 0 }), changes }
}

// CLI: prints the scaled file(s) to stdout, the list of changes to stderr.
if (import.meta.main) {
  const args = process.argv.slice(2)
  const flag = (name: string, fallback: string) => {
    const i = args.indexOf(name)
    if (i < 0) return fallback
    const value = args[i + 1]
    args.splice(i, 2)
    if (value === undefined) throw new Error(`${name} needs a value`)
    return value
  }
  const scale: TimeScale = { factor: Number(flag('--factor', '30')), scrapeInterval: flag('--scrape-interval', '1s') }
  if (args.length === 0) {
    console.error('usage: node scripts/rules/time-scale.ts [--factor 30] [--scrape-interval 1s] FILE...')
    process.exitCode = 2
  }
  for (const file of args) {
    const { text, changes } = timeScaleRules(readFileSync(file, 'utf8'), scale, file)
    process.stdout.write(text)
    for (const change of changes) console.error(change)
  }
}
