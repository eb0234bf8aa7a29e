import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createWriteStream, readFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * The service as operators run it: `node src/cli.ts` in its own process, configured by
 * environment only, killed the way tests need (SIGTERM, or SIGKILL to simulate a crash).
 */
export type ControllerProcess = {
  name: string
  /** The child's process id, for what only /proc tells (CPU time, resident memory). */
  pid: number
  url: string
  token: string
  post (path: string, body: unknown): Promise<{ status: number, body: any }>
  get (path: string): Promise<{ status: number, body: any }>
  /** Any method, optionally with another credential than the webhook token (the admin token for the pause API). */
  request (method: string, path: string, options?: { body?: unknown, token?: string }): Promise<{ status: number, body: any }>
  kill (signal: NodeJS.Signals): Promise<void>
  logs (): string
}

const sourceCli = new URL('../../src/cli.ts', import.meta.url).pathname
const running = new Set<ChildProcess>()
process.on('exit', () => { for (const child of running) child.kill('SIGKILL') })

export type StartOptions = {
  timeoutMs?: number
  /** The entry point to run; default src/cli.ts. The scale benchmark runs the compiled dist/cli.js. */
  cli?: string
  /**
   * Run node as the image does, without the test runner's loader: tap puts it into every child's
   * NODE_OPTIONS, whatever env the child is given, and `env -u` takes it out again.
   */
  untracked?: boolean
}

export async function startController (name: string, dir: string, env: Record<string, string>, options: StartOptions = {}): Promise<ControllerProcess> {
  const timeoutMs = options.timeoutMs ?? 60_000
  // A token from a file (as a Deployment mounts it) is used as it is: the service refuses both.
  const tokenFile = env.WEBHOOK_TOKEN_FILE
  const token = env.WEBHOOK_TOKEN ?? (tokenFile === undefined ? 'integration-token' : readFileSync(tokenFile, 'utf8').trim())
  const logPath = join(dir, `${name}.log`)
  const argv = [process.execPath, options.cli ?? sourceCli]
  const child = spawn(options.untracked === true ? 'env' : argv[0]!, options.untracked === true ? ['-u', 'NODE_OPTIONS', ...argv] : argv.slice(1), {
    env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: '0', ...(tokenFile === undefined ? { WEBHOOK_TOKEN: token } : {}), POD_NAME: name, LOG_LEVEL: 'debug', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  running.add(child)
  const exited = once(child, 'exit').then(() => { running.delete(child) })
  const log = createWriteStream(logPath)
  child.stderr!.pipe(log, { end: false })
  // The listening address is in the log: PORT=0 leaves the choice to the kernel, without races.
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start listening within ${timeoutMs}ms:\n${readFileSync(logPath, 'utf8').slice(-3000)}`)), timeoutMs)
    let buffered = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      log.write(chunk)
      buffered += chunk.toString()
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(buffered)
      if (match !== null) { clearTimeout(timer); resolve(match[1]!) }
      if (buffered.length > 100_000) buffered = buffered.slice(-10_000)
    })
    child.once('exit', code => { clearTimeout(timer); reject(new Error(`${name} exited with ${code}:\n${buffered.slice(-3000)}`)) })
  })
  const call = async (method: string, path: string, body?: unknown, bearer = token) => {
    const response = await fetch(url + path, {
      method,
      headers: { authorization: `Bearer ${bearer}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    const text = await response.text()
    return { status: response.status, body: text === '' ? undefined : JSON.parse(text) }
  }
  return {
    name,
    pid: child.pid!,
    url,
    token,
    post: (path, body) => call('POST', path, body),
    get: path => call('GET', path),
    request: (method, path, options = {}) => call(method, path, options.body, options.token),
    async kill (signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      await exited
    },
    logs: () => readFileSync(logPath, 'utf8')
  }
}
