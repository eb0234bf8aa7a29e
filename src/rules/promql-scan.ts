// A pragmatic PromQL scanner for the rule linter: a tokenizer plus a few
// token-level queries (aggregations and their grouping, vector-matching
// clauses, range windows, function calls, identifiers). It is NOT a parser and
// does not evaluate anything. Known limits (documented in alert-rules/README.md):
//   - operator precedence and sub-expression structure are ignored: every
//     aggregation anywhere in an expression is judged on its own;
//   - label_replace/label_join are not followed (they can add or rename labels);
//   - only the range part of subqueries ([10m:1m] -> 10m) is read, offsets and
//     @ modifiers are skipped;
//   - durations must be plain Prometheus durations (no arithmetic).

export type TokenKind = 'ident' | 'number' | 'string' | 'matchers' | 'range' | 'op' | '(' | ')' | ','

export type Token = {
  kind: TokenKind
  text: string
}

export class PromqlScanError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'PromqlScanError'
  }
}

const IDENT_START = /[A-Za-z_:]/
const IDENT_CHAR = /[A-Za-z0-9_:]/
const TWO_CHAR_OPS = new Set(['==', '!=', '>=', '<=', '=~', '!~'])
const ONE_CHAR_OPS = new Set(['+', '-', '*', '/', '%', '^', '>', '<', '=', '@', ':'])

/** Index just past a quoted string starting at `start` (which holds the quote). */
function skipString (src: string, start: number): number {
  const quote = src[start]
  let i = start + 1
  while (i < src.length) {
    const c = src[i]
    if (c === '\\' && quote !== '`') {
      i += 2
      continue
    }
    if (c === quote) return i + 1
    i++
  }
  throw new PromqlScanError(`unterminated string starting at offset ${start}`)
}

/** Index just past the bracket that closes the one at `start`, skipping strings. */
function skipBracketed (src: string, start: number, close: string): number {
  let i = start + 1
  while (i < src.length) {
    const c = src[i]
    if (c === '"' || c === "'" || c === '`') {
      i = skipString(src, i)
      continue
    }
    if (c === close) return i + 1
    i++
  }
  throw new PromqlScanError(`unclosed "${src[start]}" at offset ${start}`)
}

export function tokenize (src: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  while (i < src.length) {
    const c = src[i] as string
    if (/\s/.test(c)) {
      i++
    } else if (c === '#') {
      while (i < src.length && src[i] !== '\n') i++
    } else if (c === '"' || c === "'" || c === '`') {
      const end = skipString(src, i)
      tokens.push({ kind: 'string', text: src.slice(i, end) })
      i = end
    } else if (c === '{') {
      const end = skipBracketed(src, i, '}')
      tokens.push({ kind: 'matchers', text: src.slice(i, end) })
      i = end
    } else if (c === '[') {
      const end = skipBracketed(src, i, ']')
      tokens.push({ kind: 'range', text: src.slice(i + 1, end - 1).trim() })
      i = end
    } else if (c === '(' || c === ')' || c === ',') {
      tokens.push({ kind: c, text: c })
      i++
    } else if (/[0-9.]/.test(c)) {
      let j = i + 1
      while (j < src.length && /[0-9A-Za-z_.]/.test(src[j] as string)) j++
      tokens.push({ kind: 'number', text: src.slice(i, j) })
      i = j
    } else if (IDENT_START.test(c)) {
      let j = i + 1
      while (j < src.length && IDENT_CHAR.test(src[j] as string)) j++
      tokens.push({ kind: 'ident', text: src.slice(i, j) })
      i = j
    } else if (TWO_CHAR_OPS.has(src.slice(i, i + 2))) {
      tokens.push({ kind: 'op', text: src.slice(i, i + 2) })
      i += 2
    } else if (ONE_CHAR_OPS.has(c)) {
      tokens.push({ kind: 'op', text: c })
      i++
    } else {
      throw new PromqlScanError(`unexpected character "${c}" at offset ${i}`)
    }
  }
  return tokens
}

/** Aggregations whose output keeps only the grouping labels. */
const LABEL_DROPPING_AGGREGATIONS = new Set([
  'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'quantile'
])
/** Aggregations that select input series and return them with all their labels. */
const LABEL_KEEPING_AGGREGATIONS = new Set(['topk', 'bottomk', 'limitk', 'limit_ratio'])
const SET_OPERATORS = new Set(['and', 'or', 'unless'])
const KEYWORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset',
  'and', 'or', 'unless', 'atan2', 'inf', 'nan'
])

/** Index of the ')' matching the '(' at `open`, or -1. */
function matchingParen (tokens: Token[], open: number): number {
  let depth = 0
  for (let i = open; i < tokens.length; i++) {
    const kind = tokens[i]?.kind
    if (kind === '(') depth++
    else if (kind === ')') {
      depth--
      if (depth === 0) return i
    }
  }
  return -1
}

/** Reads `( label, "label", ... )` starting at the '(' at `open`. */
function labelList (tokens: Token[], open: number): { labels: string[], end: number } {
  const close = matchingParen(tokens, open)
  if (tokens[open]?.kind !== '(' || close < 0) {
    throw new PromqlScanError('expected a parenthesised label list')
  }
  const labels: string[] = []
  for (let i = open + 1; i < close; i++) {
    const t = tokens[i] as Token
    if (t.kind === 'ident') labels.push(t.text)
    else if (t.kind === 'string') labels.push(t.text.slice(1, -1))
  }
  return { labels, end: close }
}

export type Grouping = { kind: 'by' | 'without', labels: string[] }

export type Aggregation = {
  name: string
  /** null when the aggregation has no by/without clause: it drops every label. */
  grouping: Grouping | null
  /** Source text for messages, e.g. "max by (node)". */
  display: string
}

function displayAggregation (name: string, grouping: Grouping | null): string {
  return grouping === null ? name : `${name} ${grouping.kind} (${grouping.labels.join(', ')})`
}

/** Every label-dropping aggregation (sum, max, count, ...) with its grouping clause. */
export function aggregations (tokens: Token[]): Aggregation[] {
  const found: Aggregation[] = []
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as Token
    if (t.kind !== 'ident') continue
    const name = t.text.toLowerCase()
    if (!LABEL_DROPPING_AGGREGATIONS.has(name) && !LABEL_KEEPING_AGGREGATIONS.has(name)) continue
    const next = tokens[i + 1]
    let grouping: Grouping | null = null
    let argOpen: number
    if (next?.kind === 'ident' && (next.text.toLowerCase() === 'by' || next.text.toLowerCase() === 'without')) {
      const list = labelList(tokens, i + 2)
      grouping = { kind: next.text.toLowerCase() as 'by' | 'without', labels: list.labels }
      argOpen = list.end + 1
      if (tokens[argOpen]?.kind !== '(') continue
    } else if (next?.kind === '(') {
      argOpen = i + 1
      const argClose = matchingParen(tokens, argOpen)
      const after = tokens[argClose + 1]
      if (argClose > 0 && after?.kind === 'ident' &&
          (after.text.toLowerCase() === 'by' || after.text.toLowerCase() === 'without')) {
        const list = labelList(tokens, argClose + 2)
        grouping = { kind: after.text.toLowerCase() as 'by' | 'without', labels: list.labels }
      }
    } else {
      continue // a metric or label that happens to be called "sum"
    }
    if (LABEL_KEEPING_AGGREGATIONS.has(name)) continue
    found.push({ name, grouping, display: displayAggregation(name, grouping) })
  }
  return found
}

export type VectorMatching = {
  /** The binary operator the clause modifies (e.g. "/", ">", "and"). */
  operator: string
  kind: 'on' | 'ignoring'
  labels: string[]
  /** group_left / group_right present: the "many" side keeps its labels. */
  grouped: boolean
  /** and/or/unless never change the labels of the series they return. */
  setOperator: boolean
  display: string
}

/** Every on(...)/ignoring(...) clause with the operator it modifies. */
export function vectorMatchings (tokens: Token[]): VectorMatching[] {
  const found: VectorMatching[] = []
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as Token
    if (t.kind !== 'ident') continue
    const kind = t.text.toLowerCase()
    if ((kind !== 'on' && kind !== 'ignoring') || tokens[i + 1]?.kind !== '(') continue
    let p = i - 1
    if (tokens[p]?.kind === 'ident' && tokens[p]?.text.toLowerCase() === 'bool') p--
    const operator = tokens[p]?.text.toLowerCase() ?? ''
    const list = labelList(tokens, i + 1)
    const after = tokens[list.end + 1]
    const grouped = after?.kind === 'ident' &&
      (after.text.toLowerCase() === 'group_left' || after.text.toLowerCase() === 'group_right')
    found.push({
      operator,
      kind,
      labels: list.labels,
      grouped,
      setOperator: SET_OPERATORS.has(operator),
      display: `${operator} ${kind} (${list.labels.join(', ')})`
    })
  }
  return found
}

/** The text of every range selector / subquery: "5m", "10m:1m". */
export function rangeWindows (tokens: Token[]): string[] {
  return tokens.filter(t => t.kind === 'range').map(t => t.text)
}

/** Names of every function call (an identifier followed by "("), lower-cased. */
export function functionCalls (tokens: Token[]): string[] {
  const calls: string[] = []
  for (let i = 0; i < tokens.length - 1; i++) {
    const t = tokens[i] as Token
    if (t.kind === 'ident' && tokens[i + 1]?.kind === '(' && !KEYWORDS.has(t.text.toLowerCase())) {
      calls.push(t.text.toLowerCase())
    }
  }
  return calls
}

/** Identifiers that may be metric names (not keywords, not function calls). */
export function metricNames (tokens: Token[]): string[] {
  const names: string[] = []
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as Token
    if (t.kind !== 'ident' || KEYWORDS.has(t.text.toLowerCase())) continue
    if (tokens[i + 1]?.kind === '(') continue
    names.push(t.text)
  }
  return names
}

const DURATION_RE = /^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/
const DURATION_UNITS_MS = [
  365 * 24 * 3600 * 1000, 7 * 24 * 3600 * 1000, 24 * 3600 * 1000, 3600 * 1000, 60 * 1000, 1000, 1
]

/** Parses a Prometheus duration ("5m", "1h30m", "0s") into milliseconds; null if invalid. */
export function parseDuration (text: string): number | null {
  const s = text.trim()
  if (s === '' || s === '0') return s === '0' ? 0 : null
  const m = DURATION_RE.exec(s)
  if (m === null) return null
  let ms = 0
  for (let k = 0; k < DURATION_UNITS_MS.length; k++) {
    const part = m[k + 1]
    if (part !== undefined) ms += Number(part) * (DURATION_UNITS_MS[k] as number)
  }
  return ms
}
