import { timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'

/**
 * Constant-time comparison with a known token: the given text is copied into a buffer of the
 * token's length (so the work depends only on lengths the caller already knows) and compared with
 * timingSafeEqual; the length check is folded in without a short cut.
 */
function matches (given: string, token: Buffer): boolean {
  const candidate = Buffer.alloc(token.length)
  const written = candidate.write(given)
  return timingSafeEqual(candidate, token) && written === token.length && Buffer.byteLength(given) === token.length
}

/**
 * An onRequest hook accepting any of the given bearer tokens, compared in constant time.
 * `undefined` means authentication is off (the logged local or insecure mode). Callback style:
 * it runs on every webhook, and an async hook costs a promise per request.
 */
export function requireBearer (tokens: readonly string[] | undefined) {
  const expected = tokens?.map(token => Buffer.from(token))
  return (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    if (expected === undefined) { done(); return }
    const header = request.headers.authorization
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')
    const given = match?.[1]
    let ok = false
    for (const token of expected) ok = (given !== undefined && matches(given, token)) || ok
    if (ok) { done(); return }
    void reply.code(401).header('www-authenticate', 'Bearer').send({
      statusCode: 401,
      error: 'Unauthorized',
      message: header === undefined ? 'missing Authorization: Bearer header' : 'invalid bearer token'
    })
  }
}
