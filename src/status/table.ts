// The human view of a StatusReport: the fleet table, the budget per pool, the pauses, the windows.

import { styleText } from 'node:util'
import { formatDuration } from '../duration.ts'
import type { NodeStatus, OutOfServiceCount, Pause, PoolBudget, StatusReport, WindowsState } from './api.ts'

type Style = Parameters<typeof styleText>[0]

export interface RenderOptions {
  /** The instant "3m ago" counts from. */
  now: number
  /** ANSI colours (the caller decides: a TTY and no NO_COLOR). */
  color: boolean
  /** List healthy in-service nodes too. */
  all: boolean
}

/** Colour by what a person should do about it: red look now, yellow under way, cyan waiting, blue finishing. */
const phaseStyles: Record<string, Style> = {
  failed: 'red',
  quarantined: 'red',
  draining: 'yellow',
  remediating: 'yellow',
  rebooting: 'yellow',
  replacing: 'yellow',
  pending: 'cyan',
  cordoned: 'cyan',
  verifying: 'blue',
  cooldown: 'blue',
  healthy: 'green',
  cancelled: 'gray'
}

const count = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`

/** Natural order, so app-2 comes before app-10. */
const byName = new Intl.Collator('en', { numeric: true }).compare

/** A duration as a person reads it on a status screen: 45s, 3m, 2h5m, 50h. */
function roughly (ms: number): string {
  const unit = ms < 60_000 ? 1000 : ms < 86_400_000 ? 60_000 : 3_600_000
  return formatDuration(Math.floor(ms / unit) * unit)
}

/** "3m ago" or "in 7m" for an ISO time seen from `now`. */
function relative (iso: string, now: number): string {
  const at = Date.parse(iso)
  if (Number.isNaN(at)) return iso
  return at <= now ? `${roughly(now - at)} ago` : `in ${roughly(at - now)}`
}

/** Columns padded to their widest cell, two spaces apart; `style` colours a cell after padding. */
function table (rows: string[][], style: (column: number, cell: string, padded: string) => string): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map(row => row[column]!.length)))
  return rows.map(row => row.map((cell, column) => {
    const padded = column === row.length - 1 ? cell : cell.padEnd(widths[column]!)
    return style(column, cell, padded)
  }).join('  ').trimEnd())
}

/** Shown unless --all: anything not healthy, and healthy nodes someone else has taken out of service. */
function needsALook (node: NodeStatus): boolean {
  return node.phase !== 'healthy' || node.outOfService !== null
}

/** The why / what-holds-it column. */
function why (node: NodeStatus, now: number): string {
  const parts: string[] = []
  if (node.deferred !== null) {
    parts.push(`held by ${node.deferred.rule}${node.deferred.scope === undefined ? '' : ` (${node.deferred.scope})`}: ${node.deferred.reason}`)
  } else if (node.reason !== '') {
    parts.push(node.reason)
  }
  if (node.outcome !== null) parts.push(`outcome: ${node.outcome}`)
  // The record keeps its drain's deadline afterwards; it only says something while draining.
  if (node.drainDeadline !== null && node.phase === 'draining') parts.push(`drain deadline ${relative(node.drainDeadline, now)}`)
  if (node.cooldownUntil !== null && Date.parse(node.cooldownUntil) > now) parts.push(`cooldown ends ${relative(node.cooldownUntil, now)}`)
  if (node.outOfService?.by === 'others') parts.push(`out of service by others: ${node.outOfService.cause}`)
  return parts.join(' · ')
}

function nodeLines (nodes: NodeStatus[], options: RenderOptions, paint: (style: Style, text: string) => string): string[] {
  const shown = nodes.filter(node => options.all || needsALook(node)).sort((a, b) =>
    byName(a.pool, b.pool) || byName(a.zone, b.zone) || byName(a.name, b.name))
  const listed = options.all ? `${nodes.length}` : `${shown.length} of ${nodes.length} shown (--all lists the healthy ones)`
  if (shown.length === 0) return [`${paint('bold', 'NODES')}: all ${nodes.length} healthy and in service`]
  const rows = [
    ['POOL', 'ZONE', 'NODE', 'PHASE', 'SINCE', 'WHY'],
    ...shown.map(node => [node.pool, node.zone, node.name, node.phase, node.since === null ? '-' : relative(node.since, options.now), why(node, options.now)])
  ]
  const phaseColumn = 3
  return [
    `${paint('bold', 'NODES')}: ${listed}`,
    ...table(rows, (column, cell, padded) => {
      const style = phaseStyles[cell]
      return column === phaseColumn && style !== undefined ? paint(style, padded) : padded
    })
  ]
}

function outOfService (size: number, budget: number, oos: OutOfServiceCount): string {
  const causes = Object.entries(oos.causes).sort(([a], [b]) => byName(a, b)).map(([cause, n]) => `${cause} ${n}`)
  return `(${count(size, 'node')}): ${oos.ours + oos.others}/${budget} out of service (ours ${oos.ours}, others ${oos.others})` +
    (causes.length > 0 ? ` · causes: ${causes.join(', ')}` : '')
}

function poolLines (pool: PoolBudget, now: number, paint: (style: Style, text: string) => string): string[] {
  const breaker = pool.breaker.open
    ? paint('red', `breaker OPEN${pool.breaker.since === undefined ? '' : ` since ${relative(pool.breaker.since, now)}`}`)
    : 'breaker closed'
  const zones = pool.zones.length > 1
    ? [...pool.zones].sort((a, b) => byName(a.zone, b.zone)).map(zone => `  zone ${zone.zone} ${outOfService(zone.size, zone.budget, zone.outOfService)}`)
    : []
  return [`pool ${pool.pool} ${outOfService(pool.size, pool.budget, pool.outOfService)} · ${breaker}`, ...zones]
}

function pauseLine (pause: Pause, now: number): string {
  const scope = pause.scope === 'cluster' ? 'cluster' : `pool ${pause.pool ?? '?'}`
  const until = pause.until === undefined ? 'until lifted' : `until ${pause.until} (${relative(pause.until, now)})`
  // A pause written by hand with kubectl may have no time it was set.
  return `${scope} paused by ${pause.by}${pause.at === '' ? '' : ` ${relative(pause.at, now)}`}: ${pause.reason} · ${until}`
}

function windowsLine (windows: WindowsState, paint: (style: Style, text: string) => string, now: number): string {
  if (windows.spec === '') return `${paint('bold', 'WINDOWS')}: always open (no REMEDIATION_WINDOWS)`
  const state = windows.open
    ? 'open now'
    : paint('yellow', `closed, next opening ${windows.nextOpening === null ? 'unknown' : `${windows.nextOpening} (${relative(windows.nextOpening, now)})`}`)
  return `${paint('bold', 'WINDOWS')}: ${windows.spec} · ${state}`
}

export function renderStatus (report: StatusReport, options: RenderOptions): string[] {
  const paint = (style: Style, text: string) => options.color ? styleText(style, text, { validateStream: false }) : text
  const { budget } = report
  return [
    ...nodeLines(report.nodes, options, paint),
    '',
    `${paint('bold', 'BUDGET')}: ${budget.ours} out of service through us · at most ${count(budget.maxConcurrentDrains, 'drain')} at once`,
    ...[...budget.pools].sort((a, b) => byName(a.pool, b.pool)).flatMap(pool => poolLines(pool, options.now, paint)),
    '',
    report.pauses.length === 0 ? `${paint('bold', 'PAUSES')}: none` : `${paint('bold', 'PAUSES')}:`,
    ...report.pauses.map(pause => `  ${pauseLine(pause, options.now)}`),
    '',
    windowsLine(report.windows, paint, options.now)
  ]
}
