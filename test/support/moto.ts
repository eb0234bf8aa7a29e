import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'

/** A moto_server child process on 127.0.0.1. */
export type Moto = {
  /** e.g. http://127.0.0.1:40123 */
  readonly endpoint: string
  readonly port: number
  /** SDK client settings that reach this server. */
  readonly clientConfig: {
    endpoint: string
    region: string
    credentials: { accessKeyId: string, secretAccessKey: string }
  }
  /** POST /moto-api/reset: drops every resource in every service. */
  reset (): Promise<void>
  /** Kills the server and waits for it to exit. Safe to call twice. */
  stop (): Promise<void>
  /** The server's recent output (request log, tracebacks), for diagnostics. */
  output (): string
}

export type StartMotoOptions = {
  /** How long to wait for the server to answer; default 30 s. */
  startTimeoutMs?: number
  /** Executable; default `moto_server` from PATH. */
  command?: string
}

const OUTPUT_LIMIT = 64 * 1024

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => port > 0 ? resolve(port) : reject(new Error('could not get a free port')))
    })
  })
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

async function answers (url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) })
    await res.arrayBuffer()
    return res.ok
  } catch {
    return false
  }
}

// Children still running when the process exits (a failed test that never reached teardown).
const live = new Set<ChildProcess>()
let exitHookInstalled = false
function installExitHook (): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    // SIGTERM: the watchdog shell traps it and takes moto_server down with it
    for (const child of live) child.kill('SIGTERM')
  })
}

async function launch (port: number, options: StartMotoOptions): Promise<Moto> {
  const command = options.command ?? 'moto_server'
  // A small sh watchdog runs moto_server and kills it when told to (SIGTERM) or when this process is
  // gone (checked every second), so a test process killed by a signal does not leave moto behind.
  const watchdog = [
    '"$0" -H 127.0.0.1 -p "$1" & m=$!',
    'echo "moto-watchdog: server pid $m"',
    'trap \'kill $m 2>/dev/null; wait $m; exit 0\' TERM INT HUP',
    'while kill -0 "$2" 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done',
    'kill $m 2>/dev/null; wait $m'
  ].join('\n')
  const child = spawn('sh', ['-c', watchdog, command, String(port), String(process.pid)], { stdio: ['ignore', 'pipe', 'pipe'] })
  live.add(child)
  installExitHook()
  let out = ''
  let serverPid: number | undefined
  const collect = (chunk: Buffer): void => {
    out += chunk.toString('utf8')
    if (serverPid === undefined) {
      const found = /moto-watchdog: server pid (\d+)/.exec(out)?.[1]
      if (found !== undefined) serverPid = Number(found)
    }
    if (out.length > OUTPUT_LIMIT) out = out.slice(-OUTPUT_LIMIT)
  }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  let exited = false
  let spawnError: Error | undefined
  const exitedPromise = new Promise<void>(resolve => {
    child.once('exit', () => { exited = true; live.delete(child); resolve() })
    child.once('error', (err) => { spawnError = err; exited = true; live.delete(child); resolve() })
  })

  const endpoint = `http://127.0.0.1:${port}`
  const stop = async (): Promise<void> => {
    if (exited) return
    child.kill('SIGTERM')
    const killed = await Promise.race([exitedPromise.then(() => true), sleep(5000).then(() => false)])
    if (!killed) {
      if (serverPid !== undefined) {
        try { process.kill(serverPid, 'SIGKILL') } catch { /* already gone */ }
      }
      child.kill('SIGKILL')
      await exitedPromise
    }
  }

  const timeoutMs = options.startTimeoutMs ?? 30_000
  const started = Date.now()
  for (;;) {
    if (exited) {
      const why = spawnError !== undefined ? spawnError.message : 'exited'
      throw new Error(`moto_server on port ${port} ${why} before answering:\n${out}`)
    }
    if (await answers(`${endpoint}/moto-api/data.json`)) break
    if (Date.now() - started > timeoutMs) {
      await stop()
      throw new Error(`moto_server on port ${port} did not answer within ${timeoutMs}ms:\n${out}`)
    }
    await sleep(100)
  }

  return {
    endpoint,
    port,
    clientConfig: { endpoint, region: 'us-east-1', credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } },
    async reset () {
      const res = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST', signal: AbortSignal.timeout(10_000) })
      const body = await res.text()
      if (!res.ok) throw new Error(`moto reset answered ${res.status}: ${body}`)
    },
    stop,
    output: () => out
  }
}

/**
 * Starts `moto_server -H 127.0.0.1 -p PORT` on a free port and waits (bounded) until it answers.
 * The port is picked by binding :0 and releasing it, so another process may grab it in between;
 * a server that dies at start is retried on a new port (3 tries).
 */
export async function startMoto (options: StartMotoOptions = {}): Promise<Moto> {
  let lastError: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    try {
      return await launch(port, options)
    } catch (err) {
      lastError = err
      if (err instanceof Error && /did not answer within/.test(err.message)) break
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError))
}
