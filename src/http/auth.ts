import { hash, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'

const digest = (text: string) => hash('sha256', text, 'buffer')

/**
 * A preHandler-style hook accepting any of the given bearer tokens. Tokens are compared as
 * SHA-256 digests with timingSafeEqual, so neither the content nor the length leaks through
 * timing. `undefined` means authentication is off (the logged local or insecure mode).
 */
export function requireBearer (tokens: readonly string[] | undefined) {
  const expected = tokens?.map(digest)
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (expected === undefined) return
    const header = request.headers.authorization
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')
    const given = match === null ? undefined : digest(match[1]!)
    let ok = false
    for (const token of expected) ok = (given !== undefined && timingSafeEqual(token, given)) || ok
    if (!ok) {
      await reply.code(401).header('www-authenticate', 'Bearer').send({
        statusCode: 401,
        error: 'Unauthorized',
        message: header === undefined ? 'missing Authorization: Bearer header' : 'invalid bearer token'
      })
    }
  }
}
