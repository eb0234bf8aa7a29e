// Rule linter for remediation alerts: the Prometheus rules that may make the
// Self-Healing Controller drain a node. See alert-rules/README.md ("Rule
// linter") for the checks and the limits of the PromQL scan.
//
// A rule is a remediation rule when it is an alerting rule that carries the
// opt-in label (`remediation` unless LintOptions.optInLabel says otherwise;
// rule labels, or group labels where supported).
// Other rules (recording rules, paging alerts) are only looked at when a
// remediation rule uses the series they record.

import { parseAllDocuments } from 'yaml'
import {
  aggregations, functionCalls, metricNames, parseDuration, PromqlScanError,
  rangeWindows, tokenize, vectorMatchings, type Token
} from './promql-scan.ts'

export type Finding = {
  file: string
  group: string
  rule: string
  message: string
}

export type LintOptions = {
  /** Shortest range-vector window a remediation expression may use (default "5m"). */
  minWindow?: string
  /** The opt-in label that makes an alert a remediation request (default "remediation", cf. OPT_IN_LABEL). */
  optInLabel?: string
}

export const REMEDIATION_LABEL = 'remediation'
export const NODE_LABEL = 'node'
export const REMEDIATION_VALUES: readonly string[] = ['drain', 'reboot', 'replace']
export const DEFAULT_MIN_WINDOW = '5m'
export const REQUIRED_ANNOTATIONS: readonly string[] = ['summary', 'value']

/** The file is not a readable rule file (invalid YAML, or not the shape of one). */
export class RuleFileError extends Error {
  readonly file: string
  constructor (file: string, message: string) {
    super(`${file}: ${message}`)
    this.name = 'RuleFileError'
    this.file = file
  }
}

type Rule = {
  group: string
  name: string
  isAlert: boolean
  expr: string
  for: string | undefined
  labels: Record<string, string>
  annotations: Record<string, string>
}

function isRecord (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function stringMap (v: unknown, what: string, fail: (m: string) => never): Record<string, string> {
  if (v === undefined || v === null) return {}
  if (!isRecord(v)) fail(`${what} must be a mapping`)
  const out: Record<string, string> = {}
  for (const [k, val] of Object.entries(v)) {
    if (typeof val === 'string' || typeof val === 'number' || typeof val === 'boolean') out[k] = String(val)
    else fail(`${what}.${k} must be a string`)
  }
  return out
}

/** Rule groups of a plain rule file (`groups:`) or of PrometheusRule manifests (`spec.groups`). */
function readRules (text: string, file: string): Rule[] {
  const fail = (message: string): never => { throw new RuleFileError(file, message) }
  const docs = parseAllDocuments(text, { prettyErrors: false })
  if (!Array.isArray(docs)) return fail('no YAML document')
  const rules: Rule[] = []
  let sawGroups = false
  for (const doc of docs) {
    const err = doc.errors[0]
    if (err !== undefined) fail(`invalid YAML: ${err.message}`)
    const data: unknown = doc.toJS()
    if (data === null || data === undefined) continue
    if (!isRecord(data)) fail('expected a mapping with "groups" (or a PrometheusRule)')
    const root = data as Record<string, unknown>
    const groups = root.kind === 'PrometheusRule' && isRecord(root.spec) ? root.spec.groups : root.groups
    if (groups === undefined) fail('no "groups" key: not a Prometheus rule file (or PrometheusRule)')
    if (!Array.isArray(groups)) fail('"groups" must be a list')
    sawGroups = true
    for (const [gi, g] of (groups as unknown[]).entries()) {
      if (!isRecord(g) || typeof g.name !== 'string') fail(`group #${gi + 1} has no name`)
      const group = g as Record<string, unknown>
      const groupName = group.name as string
      const groupLabels = stringMap(group.labels, `group "${groupName}" labels`, fail)
      const list = group.rules ?? []
      if (!Array.isArray(list)) fail(`group "${groupName}": "rules" must be a list`)
      for (const [ri, r] of (list as unknown[]).entries()) {
        const where = `group "${groupName}" rule #${ri + 1}`
        if (!isRecord(r)) fail(`${where} is not a mapping`)
        const rule = r as Record<string, unknown>
        const isAlert = typeof rule.alert === 'string'
        const name = isAlert ? rule.alert : rule.record
        if (typeof name !== 'string' || name === '') fail(`${where} has neither "alert" nor "record"`)
        if (typeof rule.expr !== 'string' && typeof rule.expr !== 'number') fail(`${where} has no "expr"`)
        if (rule.for !== undefined && typeof rule.for !== 'string') fail(`${where}: "for" must be a duration string`)
        rules.push({
          group: groupName,
          name: name as string,
          isAlert,
          expr: String(rule.expr),
          for: rule.for as string | undefined,
          labels: { ...groupLabels, ...stringMap(rule.labels, `${where} labels`, fail) },
          annotations: stringMap(rule.annotations, `${where} annotations`, fail)
        })
      }
    }
  }
  if (!sawGroups) fail('no rule groups found')
  return rules
}

type Source = { recordedBy: string | null, tokens: Token[] }

/**
 * The alert's expression plus, transitively, the expressions of the recording
 * rules (from the same file) whose series it uses.
 */
function expressionSources (alert: Rule, records: Map<string, Rule[]>, addFinding: (m: string) => void): Source[] {
  const sources: Source[] = []
  const seen = new Set<string>()
  const visit = (expr: string, recordedBy: string | null): void => {
    let tokens: Token[]
    try {
      tokens = tokenize(expr)
    } catch (e) {
      const where = recordedBy === null ? 'expression' : `recording rule "${recordedBy}"`
      addFinding(`cannot scan ${where}: ${(e as Error).message}`)
      return
    }
    sources.push({ recordedBy, tokens })
    for (const name of metricNames(tokens)) {
      if (seen.has(name)) continue
      const recs = records.get(name)
      if (recs === undefined) continue
      seen.add(name)
      for (const rec of recs) visit(rec.expr, rec.name)
    }
  }
  visit(alert.expr, null)
  return sources
}

function formatDuration (ms: number): string {
  if (ms % 60000 === 0) return `${ms / 60000}m`
  if (ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}

/**
 * Lints the remediation rules in one rule file (plain Prometheus rules or
 * PrometheusRule manifests, multi-document YAML allowed). Pure: no I/O.
 * Throws RuleFileError when the text is not valid YAML or not a rule file.
 */
export function lintRules (text: string, fileName: string, options: LintOptions = {}): Finding[] {
  const minWindowText = options.minWindow ?? DEFAULT_MIN_WINDOW
  const minWindowMs = parseDuration(minWindowText)
  if (minWindowMs === null) throw new Error(`invalid minimum window "${minWindowText}"`)

  const optIn = options.optInLabel ?? REMEDIATION_LABEL
  const rules = readRules(text, fileName)
  const records = new Map<string, Rule[]>()
  for (const r of rules) {
    if (r.isAlert) continue
    const list = records.get(r.name) ?? []
    list.push(r)
    records.set(r.name, list)
  }

  const findings: Finding[] = []
  for (const rule of rules) {
    if (!rule.isAlert || !(optIn in rule.labels)) continue
    const messages: string[] = []
    const add = (m: string): void => {
      const message = `alert "${rule.name}": ${m}`
      if (!messages.includes(message)) messages.push(message)
    }
    const inRecording = (s: Source): string => s.recordedBy === null ? '' : ` (in recording rule "${s.recordedBy}")`

    // 1. The opt-in label's value.
    const value = rule.labels[optIn] as string
    if (!REMEDIATION_VALUES.includes(value)) {
      add(`label ${optIn}="${value}" is not one of ${REMEDIATION_VALUES.join(', ')}`)
    }

    // 2. Required annotations.
    for (const a of REQUIRED_ANNOTATIONS) {
      if (rule.annotations[a] === undefined || rule.annotations[a] === '') add(`missing annotation "${a}"`)
    }

    // 3. The node label must come from the expression.
    if (NODE_LABEL in rule.labels) {
      add(`sets label ${NODE_LABEL}="${rule.labels[NODE_LABEL]}" in the rule; the ${NODE_LABEL} label must come from the expression (aggregate by (${NODE_LABEL}))`)
    }
    const sources = expressionSources(rule, records, add)
    let aggregationCount = 0
    for (const s of sources) {
      let aggs
      let matchings
      try {
        aggs = aggregations(s.tokens)
        matchings = vectorMatchings(s.tokens)
      } catch (e) {
        if (!(e instanceof PromqlScanError)) throw e
        add(`cannot scan expression${inRecording(s)}: ${e.message}`)
        continue
      }
      aggregationCount += aggs.length
      for (const a of aggs) {
        if (a.grouping === null) {
          add(`"${a.display}" has no by (...) clause and drops the ${NODE_LABEL} label${inRecording(s)}; use ${a.name} by (${NODE_LABEL}, ...)`)
        } else if (a.grouping.kind === 'by' && !a.grouping.labels.includes(NODE_LABEL)) {
          add(`"${a.display}" drops the ${NODE_LABEL} label${inRecording(s)}; add ${NODE_LABEL} to by (...)`)
        } else if (a.grouping.kind === 'without' && a.grouping.labels.includes(NODE_LABEL)) {
          add(`"${a.display}" removes the ${NODE_LABEL} label${inRecording(s)}`)
        }
      }
      for (const m of matchings) {
        if (m.setOperator || m.grouped) continue
        if (m.kind === 'on' && !m.labels.includes(NODE_LABEL)) {
          add(`"${m.display}" keeps only the listed labels and drops ${NODE_LABEL}${inRecording(s)}; add ${NODE_LABEL} to on (...)`)
        } else if (m.kind === 'ignoring' && m.labels.includes(NODE_LABEL)) {
          add(`"${m.display}" drops the ${NODE_LABEL} label${inRecording(s)}`)
        }
      }
    }
    if (aggregationCount === 0) {
      add(`no aggregation by (${NODE_LABEL}) in the expression, so the ${NODE_LABEL} label is not guaranteed (it depends on the raw series); aggregate with e.g. max by (${NODE_LABEL}) (...)`)
    }

    // 4. Range windows and `for`.
    let longestWindowMs = 0
    for (const s of sources) {
      for (const w of rangeWindows(s.tokens)) {
        const rangePart = w.split(':')[0] as string
        const ms = parseDuration(rangePart)
        if (ms === null) {
          add(`range window [${w}] is not a plain duration and cannot be checked${inRecording(s)}`)
          continue
        }
        if (ms < minWindowMs) {
          add(`range window [${w}] is shorter than the minimum ${minWindowText}${inRecording(s)}`)
        }
        longestWindowMs = Math.max(longestWindowMs, ms)
      }
    }
    if (longestWindowMs === 0) {
      add(`expression has no range-vector window; a remediation signal must be windowed (e.g. rate(x[${minWindowText}]))`)
    }
    const forMs = rule.for === undefined ? 0 : parseDuration(rule.for)
    if (forMs === null) {
      add(`"for: ${rule.for}" is not a valid duration`)
    } else if (longestWindowMs > 0 && forMs < longestWindowMs) {
      add(`"for: ${rule.for ?? '0s'}" is shorter than its range window [${formatDuration(longestWindowMs)}]; set for >= the window`)
    }

    // 5. Sample-count guard, and no absent-data alerting.
    const calls = sources.flatMap(s => functionCalls(s.tokens).map(name => ({ name, s })))
    if (!calls.some(c => c.name === 'count_over_time')) {
      add(`no sample-count guard: add "and count_over_time(<series>[${minWindowText}]) >= N" so scrape gaps or a just-appeared target cannot fire it`)
    }
    for (const c of calls) {
      if (c.name === 'absent' || c.name === 'absent_over_time') {
        add(`uses ${c.name}()${inRecording(c.s)}; alerts on missing data are for paging, never for remediation`)
      }
    }

    for (const message of messages) findings.push({ file: fileName, group: rule.group, rule: rule.name, message })
  }
  return findings
}
