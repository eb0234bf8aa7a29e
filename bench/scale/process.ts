import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { waitFor } from '../../test/support/controlplane.ts'

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
  return {
    async stop () {
      running = false
      await loop
      return { min, max }
    }
  }
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

/** A TCP port free on 127.0.0.1 right now: for the controller's inspector (--inspect-port). */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise(resolve => server.close(resolve))
  return port
}

export type MemoryUsage = { rss: number, heapTotal: number, heapUsed: number, external: number, arrayBuffers: number }

/** A session on a Node process's inspector (Chrome DevTools Protocol): `call` sends a method and resolves with its result. */
export type InspectorSession = { call (method: string, params?: Record<string, unknown>): Promise<any>, close (): void }

/**
 * Opens the inspector of a running Node process: SIGUSR1 makes it listen on the port the process
 * was started with (`--inspect-port`, loopback); it stays open, idle, after the session closes.
 * Node only, and only if the process does not handle SIGUSR1 itself.
 */
export async function inspect (pid: number, inspectPort: number): Promise<InspectorSession> {
  process.kill(pid, 'SIGUSR1')
  const base = `http://127.0.0.1:${inspectPort}`
  const targets = await waitFor(`the inspector of ${pid} on ${base}`, async () => {
    const response = await fetch(`${base}/json/list`).catch(() => undefined)
    return response?.ok === true ? await response.json() as Array<{ webSocketDebuggerUrl: string }> : undefined
  }, { timeoutMs: 10_000, intervalMs: 100 })
  const socket = new WebSocket(targets[0]!.webSocketDebuggerUrl)
  await new Promise((resolve, reject) => {
    socket.addEventListener('open', resolve, { once: true })
    socket.addEventListener('error', reject, { once: true })
  })
  let nextId = 0
  const answers = new Map<number, { resolve: (result: unknown) => void, reject: (err: Error) => void }>()
  socket.addEventListener('message', message => {
    const reply = JSON.parse(String(message.data)) as { id?: number, result?: unknown, error?: { message: string } }
    const answer = reply.id === undefined ? undefined : answers.get(reply.id)
    if (answer === undefined) return
    answers.delete(reply.id!)
    if (reply.error === undefined) answer.resolve(reply.result)
    else answer.reject(new Error(`inspector: ${reply.error.message}`))
  })
  return {
    call: (method, params = {}) => new Promise((resolve, reject) => {
      const id = ++nextId
      answers.set(id, { resolve, reject })
      socket.send(JSON.stringify({ id, method, params }))
    }),
    close: () => socket.close()
  }
}

/**
 * The process's memory right after two full garbage collections: what its heap really holds,
 * which samples of a running heap (garbage included, collected whenever V8 decides) cannot tell.
 */
export async function memoryAfterGc (pid: number, inspectPort: number): Promise<MemoryUsage> {
  const session = await inspect(pid, inspectPort)
  try {
    await session.call('HeapProfiler.collectGarbage')
    await session.call('HeapProfiler.collectGarbage')
    const evaluated = await session.call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })
    return JSON.parse(evaluated.result.value as string) as MemoryUsage
  } finally {
    session.close()
  }
}

/** Starts V8's sampling CPU profiler in the process; `stop` returns the profile (a .cpuprofile's content). */
export async function startCpuProfile (pid: number, inspectPort: number, intervalMicros = 250): Promise<{ stop (): Promise<CpuProfile> }> {
  const session = await inspect(pid, inspectPort)
  await session.call('Profiler.enable')
  await session.call('Profiler.setSamplingInterval', { interval: intervalMicros })
  await session.call('Profiler.start')
  return {
    async stop () {
      try {
        return (await session.call('Profiler.stop')).profile as CpuProfile
      } finally {
        session.close()
      }
    }
  }
}

export type CpuProfile = {
  nodes: Array<{ id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }>
  samples: number[]
  timeDeltas: number[]
}

/**
 * Where a profile's time went: self time per function (name, file:line), highest first, and per
 * file, with the repository's path made relative. Idle and garbage collection are V8's own entries.
 */
export function topOfProfile (profile: CpuProfile, count = 15): { functions: Array<[string, number]>, files: Array<[string, number]>, totalMs: number } {
  const byId = new Map(profile.nodes.map(node => [node.id, node]))
  const selfMicros = new Map<number, number>()
  profile.samples.forEach((id, i) => selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
  const functions = new Map<string, number>()
  const files = new Map<string, number>()
  let total = 0
  for (const [id, micros] of selfMicros) {
    const frame = byId.get(id)!.callFrame
    const file = frame.url.replace(/^file:\/\/.*?\/(src|dist|node_modules|bench|test)\//, '$1/') || '(native)'
    const key = `${frame.functionName || '(anonymous)'} ${file}:${frame.lineNumber + 1}`
    functions.set(key, (functions.get(key) ?? 0) + micros)
    const place = file.startsWith('node_modules/') ? file.split('/').slice(0, file.startsWith('node_modules/@') ? 3 : 2).join('/') : file
    files.set(place, (files.get(place) ?? 0) + micros)
    total += micros
  }
  const top = (map: Map<string, number>) => [...map].sort((a, b) => b[1] - a[1]).slice(0, count).map(([key, micros]): [string, number] => [key, Math.round(micros / 100) / 10])
  return { functions: top(functions), files: top(files), totalMs: Math.round(total / 1000) }
}
