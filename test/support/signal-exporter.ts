/**
 * A deterministic stand-in for node_exporter and the applications' DB client histogram: the
 * metrics the remediation rules read (alert-rules/README.md, "Metric contract"), per node, with a
 * safe value by default and per-node faults that tests and the lab switch on and off.
 *
 * Every counter is a pure function of the time it is read at: the value accumulated until the
 * last fault change plus rate × elapsed time. Two scrapes at the same instant see the same
 * numbers, and a rate over any window is exactly the configured one.
 *
 * The exposition carries no `node` label: as in a real cluster, the scrape configuration adds it
 * (prometheusConfig() in prometheus.ts gives every node its own target with label node=<name>).
 *
 *   GET    /nodes/<node>/metrics/node   node_exporter series (job node-exporter)
 *   GET    /nodes/<node>/metrics/app    db_client_connection_latency_seconds (job app)
 *   GET    /faults                      {"worker-3": ["disk"]}
 *   POST   /faults/<node>/<kind>        inject (kind: disk | nic | db)
 *   DELETE /faults/<node>/<kind>        clear one; DELETE /faults/<node> or /faults clears more
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export const faultKinds = ['disk', 'nic', 'db'] as const
export type FaultKind = typeof faultKinds[number]

export const isFaultKind = (value: string): value is FaultKind => (faultKinds as readonly string[]).includes(value)

/**
 * Per-second rates, healthy and faulty. Healthy values sit far below the clear thresholds and
 * faulty ones far above the fire thresholds, so a window that is mostly fault fires and one that
 * is mostly healthy clears (disk 0.9/0.8, NIC 1%/0.5%, p99 0.5s/0.25s).
 */
export const levels = {
  /** Fraction of time the physical disk is busy. */
  diskBusy: { ok: 0.05, fault: 0.97 },
  /** Always saturated and always ignored by the rule (loop devices are excluded). */
  loopBusy: 1,
  nicPackets: { rx: 2000, tx: 1500 },
  /** Share of packets in error on the physical NIC. */
  nicErrorRatio: { ok: 0, fault: 0.05 },
  /** A veth pair full of errors, which the rule must ignore. */
  vethPackets: 300,
  vethErrorRatio: 0.1,
  dbConnections: 20,
  /** Seconds per connection: the bucket every observation lands in. */
  dbLatency: { ok: 0.02, fault: 1.5 }
} as const

export const dbBuckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const

type Counters = Map<string, number>
type NodeState = { faults: Set<FaultKind>, base: Counters, since: number }

export type SignalExporterOptions = {
  nodes: readonly string[]
  /** Clock in ms; tests inject one. */
  now?: () => number
}

export type SignalExporter = ReturnType<typeof createSignalExporter>

function escapeLabel (value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

function labels (pairs: Record<string, string>): string {
  const body = Object.entries(pairs).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')
  return body === '' ? '' : `{${body}}`
}

/** Per-second rate of every counter of a node with these faults, keyed by series. */
function ratesOf (faults: ReadonlySet<FaultKind>): Counters {
  const rates: Counters = new Map()
  const disk = faults.has('disk') ? levels.diskBusy.fault : levels.diskBusy.ok
  rates.set(`node_disk_io_time_seconds_total${labels({ device: 'nvme0n1' })}`, disk)
  rates.set(`node_disk_io_time_seconds_total${labels({ device: 'loop0' })}`, levels.loopBusy)

  const ratio = faults.has('nic') ? levels.nicErrorRatio.fault : levels.nicErrorRatio.ok
  for (const [dir, packets] of [['receive', levels.nicPackets.rx], ['transmit', levels.nicPackets.tx]] as const) {
    rates.set(`node_network_${dir}_packets_total${labels({ device: 'eth0' })}`, packets)
    rates.set(`node_network_${dir}_errs_total${labels({ device: 'eth0' })}`, packets * ratio)
    rates.set(`node_network_${dir}_packets_total${labels({ device: 'veth1a2b3c4' })}`, levels.vethPackets)
    rates.set(`node_network_${dir}_errs_total${labels({ device: 'veth1a2b3c4' })}`, levels.vethPackets * levels.vethErrorRatio)
    rates.set(`node_network_${dir}_packets_total${labels({ device: 'lo' })}`, 100)
    rates.set(`node_network_${dir}_errs_total${labels({ device: 'lo' })}`, 0)
  }

  const latency = faults.has('db') ? levels.dbLatency.fault : levels.dbLatency.ok
  const perSecond = levels.dbConnections
  for (const le of dbBuckets) rates.set(`db_client_connection_latency_seconds_bucket${labels({ le: String(le) })}`, latency <= le ? perSecond : 0)
  rates.set(`db_client_connection_latency_seconds_bucket${labels({ le: '+Inf' })}`, perSecond)
  rates.set('db_client_connection_latency_seconds_count', perSecond)
  rates.set('db_client_connection_latency_seconds_sum', perSecond * latency)
  return rates
}

const HELP: Record<string, [string, string]> = {
  node_disk_io_time_seconds_total: ['counter', 'Total seconds spent doing I/Os.'],
  node_network_receive_packets_total: ['counter', 'Network device statistic receive_packets.'],
  node_network_transmit_packets_total: ['counter', 'Network device statistic transmit_packets.'],
  node_network_receive_errs_total: ['counter', 'Network device statistic receive_errs.'],
  node_network_transmit_errs_total: ['counter', 'Network device statistic transmit_errs.'],
  db_client_connection_latency_seconds: ['histogram', 'Time to obtain a usable database connection.']
}

/** Exposition text of a set of series, grouped per metric family with HELP and TYPE. */
function exposition (values: Counters, family: (series: string) => string): string {
  const families = new Map<string, string[]>()
  for (const [series, value] of values) {
    const name = family(series)
    let lines = families.get(name)
    if (lines === undefined) families.set(name, lines = [])
    lines.push(`${series} ${value}`)
  }
  let out = ''
  for (const [name, lines] of families) {
    const [type, help] = HELP[name] ?? ['untyped', name]
    out += `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${lines.join('\n')}\n`
  }
  return out
}

/** A histogram's _bucket, _count and _sum series belong to one family; counters are their own. */
function familyOf (series: string): string {
  const name = series.replace(/\{.*$/, '')
  return name.startsWith('db_client_connection_latency_seconds_') ? 'db_client_connection_latency_seconds' : name
}

export function createSignalExporter (options: SignalExporterOptions) {
  const now = options.now ?? Date.now
  if (options.nodes.length === 0) throw new Error('the signal exporter needs at least one node')
  const started = now()
  const state = new Map<string, NodeState>(options.nodes.map(node => [node, { faults: new Set(), base: new Map(), since: started }]))
  let server: http.Server | undefined

  const stateOf = (node: string): NodeState => {
    const s = state.get(node)
    if (s === undefined) throw new RangeError(`unknown node ${node}; the exporter knows ${options.nodes.join(', ')}`)
    return s
  }

  /** Counter values of a node at time `at` (ms). */
  function countersAt (node: string, at: number): Counters {
    const s = stateOf(node)
    const elapsed = Math.max(0, at - s.since) / 1000
    const values: Counters = new Map()
    for (const [series, rate] of ratesOf(s.faults)) values.set(series, (s.base.get(series) ?? 0) + rate * elapsed)
    return values
  }

  /** Changing a fault first banks what the counters reached, so they never jump or go back. */
  function change (node: string, update: (faults: Set<FaultKind>) => void) {
    const s = stateOf(node)
    const at = now()
    s.base = countersAt(node, at)
    s.since = at
    update(s.faults)
  }

  function render (node: string, job: 'node' | 'app', at = now()): string {
    const all = countersAt(node, at)
    const mine: Counters = new Map([...all].filter(([series]) => series.startsWith('db_client_') === (job === 'app')))
    let text = exposition(mine, familyOf)
    if (job === 'node') {
      text += '# HELP node_uname_info Labeled system information as provided by the uname system call.\n# TYPE node_uname_info gauge\n' +
        `node_uname_info${labels({ nodename: node, sysname: 'Linux', release: '6.1.0-signal-exporter', machine: 'x86_64' })} 1\n`
    }
    return text
  }

  const faults = () => Object.fromEntries([...state].filter(([, s]) => s.faults.size > 0).map(([node, s]) => [node, [...s.faults].sort()]))

  function handle (req: http.IncomingMessage, res: http.ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://exporter')
    const parts = url.pathname.split('/').filter(p => p !== '').map(decodeURIComponent)
    const send = (code: number, body: unknown, type = 'application/json') => {
      res.writeHead(code, { 'content-type': type })
      res.end(typeof body === 'string' ? body : `${JSON.stringify(body)}\n`)
    }
    try {
      if (req.method === 'GET' && parts[0] === 'nodes' && parts.length === 4 && parts[2] === 'metrics' && (parts[3] === 'node' || parts[3] === 'app')) {
        return send(200, render(parts[1]!, parts[3]), 'text/plain; version=0.0.4; charset=utf-8')
      }
      if (parts[0] === 'faults') {
        const [, node, kind] = parts
        if (kind !== undefined && !isFaultKind(kind)) return send(400, { error: `unknown fault kind ${kind}; one of ${faultKinds.join(', ')}` })
        if (req.method === 'GET' && parts.length === 1) return send(200, faults())
        if (req.method === 'POST' && node !== undefined && kind !== undefined && parts.length === 3) {
          setFault(node, kind)
          return send(200, faults())
        }
        if (req.method === 'DELETE' && parts.length <= 3) {
          if (node === undefined) clear()
          else clearFault(node, kind)
          return send(200, faults())
        }
      }
      if (req.method === 'GET' && parts.length === 0) {
        return send(200, `signal exporter for ${options.nodes.join(', ')}\n` +
          'GET /nodes/<node>/metrics/node | /nodes/<node>/metrics/app\n' +
          `GET /faults; POST|DELETE /faults/<node>/<${faultKinds.join('|')}>; DELETE /faults/<node>; DELETE /faults\n`, 'text/plain')
      }
      send(404, { error: `no route for ${req.method} ${url.pathname}` })
    } catch (err) {
      if (err instanceof RangeError) return send(404, { error: err.message })
      send(500, { error: (err as Error).message })
    }
  }

  function setFault (node: string, kind: FaultKind) {
    change(node, f => f.add(kind))
  }

  /** Clears one fault kind of a node, or all of its faults. */
  function clearFault (node: string, kind?: FaultKind) {
    change(node, f => kind === undefined ? f.clear() : f.delete(kind))
  }

  function clear () {
    for (const node of state.keys()) if (stateOf(node).faults.size > 0) clearFault(node)
  }

  return {
    nodes: options.nodes,
    setFault,
    clearFault,
    clear,
    faults,
    render,
    /** Listens on 127.0.0.1 (port 0: a free one). */
    async listen (port = 0): Promise<{ url: string, port: number }> {
      if (server !== undefined) throw new Error('already listening')
      const s = http.createServer(handle)
      server = s
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject)
        s.listen(port, '127.0.0.1', () => {
          s.off('error', reject)
          resolve()
        })
      })
      const address = s.address() as AddressInfo
      return { url: `http://127.0.0.1:${address.port}`, port: address.port }
    },
    async close () {
      const s = server
      server = undefined
      if (s === undefined) return
      s.closeAllConnections()
      await new Promise<void>(resolve => s.close(() => resolve()))
    }
  }
}
