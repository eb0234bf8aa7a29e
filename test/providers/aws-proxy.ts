import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

/**
 * A tiny HTTP proxy on 127.0.0.1 in front of moto_server for tests:
 * - logs every EC2 / Auto Scaling query-protocol call (service, Action, params, status it got);
 * - injects faults into the next N matching calls (throttling XML errors, HTML 500s, hangs);
 * - runs hooks before forwarding (to simulate a concurrent actor).
 *
 * moto has no throttling injection of its own, hence this proxy.
 */

export type AwsService = 'ec2' | 'autoscaling' | 'other'

export type ProxiedCall = {
  service: AwsService
  action: string
  params: URLSearchParams
  /** HTTP status the client got. */
  status: number
  /** true when the proxy answered itself (fault) instead of moto. */
  injected: boolean
}

export type Fault =
  /** AWS-style XML throttling error. Defaults: EC2 RequestLimitExceeded/503, Auto Scaling Throttling/400. */
  | { kind: 'throttle', code?: string, status?: number }
  /** An HTML 500 page like the one moto returns when its handler crashes. */
  | { kind: 'html500' }
  /** Never answer; the request hangs until the client gives up or the proxy closes. */
  | { kind: 'hang' }

export type FaultRule = {
  service?: AwsService
  action?: string
  /** How many matching calls get the fault. */
  times: number
  fault: Fault
}

export type Hook = (call: { service: AwsService, action: string, params: URLSearchParams }) => Promise<void> | void

export type AwsProxy = {
  readonly endpoint: string
  readonly calls: ProxiedCall[]
  /** Queue a fault for the next `times` calls matching service/action. */
  inject (rule: FaultRule): void
  /** Remove queued faults and hooks. */
  clearFaults (): void
  /** Run `hook` before forwarding calls to `action` (all of them until cleared). */
  before (action: string, hook: Hook): void
  /** Successful (2xx from moto, not injected) calls of `action`, optionally only those naming `instanceId`. */
  succeeded (action: string, instanceId?: string): number
  /** All calls of `action` the client made, whatever the answer. */
  attempted (action: string): number
  close (): Promise<void>
}

function serviceOf (req: IncomingMessage): AwsService {
  const auth = req.headers.authorization ?? ''
  const match = /Credential=[^/]+\/[^/]+\/[^/]+\/([^/]+)\/aws4_request/.exec(auth)
  const service = match?.[1]
  if (service === 'ec2' || service === 'autoscaling') return service
  return 'other'
}

/** The instance ids a call names: InstanceId, InstanceIds.N, InstanceId.N, Resources / ResourceId.N. */
export function instanceIdsOf (params: URLSearchParams): string[] {
  const ids: string[] = []
  for (const [key, value] of params) {
    if (/^(InstanceId|InstanceIds|InstanceId\.\d+|InstanceIds\.member\.\d+|ResourceId\.\d+|Resources\.\d+)$/.test(key) && value.startsWith('i-')) ids.push(value)
  }
  return ids
}

let requestCounter = 0
function requestId (): string {
  requestCounter++
  return `00000000-0000-4000-8000-${String(requestCounter).padStart(12, '0')}`
}

function faultResponse (service: AwsService, fault: Fault): { status: number, contentType: string, body: string } {
  if (fault.kind === 'html500') {
    return {
      status: 500,
      contentType: 'text/html; charset=utf-8',
      body: '<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n<p>The server encountered an internal error and was unable to complete your request.</p>\n'
    }
  }
  if (fault.kind === 'throttle') {
    if (service === 'autoscaling') {
      const code = fault.code ?? 'Throttling'
      return {
        status: fault.status ?? 400,
        contentType: 'text/xml',
        body: `<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type><Code>${code}</Code><Message>Rate exceeded</Message></Error><RequestId>${requestId()}</RequestId></ErrorResponse>`
      }
    }
    const code = fault.code ?? 'RequestLimitExceeded'
    return {
      status: fault.status ?? 503,
      contentType: 'text/xml;charset=UTF-8',
      body: `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${code}</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>${requestId()}</RequestID></Response>`
    }
  }
  throw new Error('hang has no response')
}

export async function startAwsProxy (target: string): Promise<AwsProxy> {
  const calls: ProxiedCall[] = []
  let rules: FaultRule[] = []
  let hooks = new Map<string, Hook>()
  const sockets = new Set<Socket>()
  const hanging = new Set<ServerResponse>()

  const readBody = (req: IncomingMessage): Promise<Buffer> => new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req)
    const service = serviceOf(req)
    const contentType = req.headers['content-type'] ?? ''
    const params = contentType.includes('x-www-form-urlencoded') ? new URLSearchParams(body.toString('utf8')) : new URLSearchParams()
    const action = params.get('Action') ?? `${req.method ?? 'GET'} ${req.url ?? '/'}`

    const rule = rules.find(r => r.times > 0 && (r.service === undefined || r.service === service) && (r.action === undefined || r.action === action))
    if (rule !== undefined) {
      rule.times--
      if (rule.fault.kind === 'hang') {
        calls.push({ service, action, params, status: 0, injected: true })
        hanging.add(res)
        res.on('close', () => hanging.delete(res))
        return
      }
      const answer = faultResponse(service, rule.fault)
      calls.push({ service, action, params, status: answer.status, injected: true })
      res.writeHead(answer.status, { 'content-type': answer.contentType, 'content-length': Buffer.byteLength(answer.body) })
      res.end(answer.body)
      return
    }

    const hook = hooks.get(action)
    if (hook !== undefined) await hook({ service, action, params })

    const headers = new Headers()
    for (const [key, value] of Object.entries(req.headers)) {
      if (value === undefined || ['host', 'connection', 'content-length', 'transfer-encoding'].includes(key)) continue
      headers.set(key, Array.isArray(value) ? value.join(', ') : value)
    }
    const method = req.method ?? 'GET'
    const upstream = await fetch(`${target}${req.url ?? '/'}`, {
      method,
      headers,
      body: method === 'GET' || method === 'HEAD' ? undefined : body,
      signal: AbortSignal.timeout(30_000)
    })
    const answer = Buffer.from(await upstream.arrayBuffer())
    calls.push({ service, action, params, status: upstream.status, injected: false })
    const outHeaders: Record<string, string> = {}
    upstream.headers.forEach((value, key) => {
      if (!['content-length', 'transfer-encoding', 'connection', 'content-encoding'].includes(key)) outHeaders[key] = value
    })
    outHeaders['content-length'] = String(answer.length)
    res.writeHead(upstream.status, outHeaders)
    res.end(answer)
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' })
      res.end(`proxy error: ${err instanceof Error ? err.message : String(err)}`)
    })
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0

  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    inject (rule) { rules.push({ ...rule }) },
    clearFaults () {
      rules = []
      hooks = new Map()
    },
    before (action, hook) { hooks.set(action, hook) },
    succeeded (action, instanceId) {
      return calls.filter(c => c.action === action && !c.injected && c.status >= 200 && c.status < 300 &&
        (instanceId === undefined || instanceIdsOf(c.params).includes(instanceId))).length
    },
    attempted (action) {
      return calls.filter(c => c.action === action).length
    },
    close () {
      return new Promise<void>((resolve) => {
        for (const res of hanging) res.destroy()
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      })
    }
  }
}
