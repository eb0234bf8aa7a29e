import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

/** What a process costs, from /proc (Linux): read from outside, so measuring adds no work to it. */

const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())

/** User + system CPU time the process has used so far, in seconds. */
export function cpuSeconds (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name, which is in parentheses and may hold spaces: state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond
}

/** Resident memory now, in bytes. */
export function rssBytes (pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (match === null) throw new Error(`no VmRSS in /proc/${pid}/status: has the process exited?`)
  return Number(match[1]) * 1024
}

/** The controller's own view of its memory, from its /metrics. */
export async function scrapeMemory (url: string): Promise<{ rss: number, heap: number }> {
  const text = await (await fetch(`${url}/metrics`)).text()
  const value = (name: string) => {
    const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text)
    if (match === null) throw new Error(`${name} is missing from ${url}/metrics`)
    return Number(match[1])
  }
  return { rss: value('shc_process_resident_memory_bytes'), heap: value('shc_process_heap_used_bytes') }
}

/** Samples `read` every `everyMs` until stopped: the lowest and highest values seen. */
export function sampled (read: () => number | Promise<number>, everyMs: number): { stop (): Promise<{ min: number, max: number }> } {
  let min = Infinity
  let max = -Infinity
  let running = true
  const loop = (async () => {
    while (running) {
      try {
        const value = await read()
        min = Math.min(min, value)
        max = Math.max(max, value)
      } catch {
        // a sample that fails (a scrape timing out under load) is just missed
      }
      await new Promise(resolve => setTimeout(resolve, everyMs))
    }
  })()
  return { async stop () { running = false; await loop; return { min, max } } }
}

/**
 * Waits until the process is quiet again after a burst: CPU use over `windowMs` back within
 * `slack` of the idle rate, for at most `timeoutMs`. Returns when it settled, to bound the
 * CPU accounting of the burst.
 */
export async function settle (pid: number, idleRate: number, options: { windowMs?: number, slack?: number, timeoutMs?: number } = {}): Promise<{ settledAt: number, settled: boolean }> {
  const windowMs = options.windowMs ?? 2000
  const slack = options.slack ?? 0.02
  const end = Date.now() + (options.timeoutMs ?? 180_000)
  for (;;) {
    const before = cpuSeconds(pid)
    await new Promise(resolve => setTimeout(resolve, windowMs))
    const rate = (cpuSeconds(pid) - before) / (windowMs / 1000)
    if (rate <= idleRate + slack) return { settledAt: Date.now() - windowMs, settled: true }
    if (Date.now() > end) return { settledAt: Date.now(), settled: false }
  }
}
