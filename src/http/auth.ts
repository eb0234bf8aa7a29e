import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'

const scheme = 'bearer'

/**
 * Whether `given` equals `token`, in time that depends only on the token's length: every
 * character is compared, differences are OR-ed together, nothing returns early. (A JS loop rather
 * than crypto.timingSafeEqual: that needs two equal-length buffers, and allocating them was most
 * of this hook's cost on every webhook.)
 */
function matches (given: string, token: string): boolean {
  let difference = given.length ^ token.length
  for (let i = 0; i < token.length; i++) difference |= given.charCodeAt(i) ^ token.charCodeAt(i)
  return difference === 0
}

/** The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), or undefined. */
function bearerToken (header: string | undefined): string | undefined {
  if (header === undefined || header.slice(0, scheme.length).toLowerCase() !== scheme) return undefined
  const rest = header.slice(scheme.length)
  const token = rest.trim()
  return token === '' || !/^\s/.test(rest) || /\s/.test(token) ? undefined : token
}

/**
 * An onRequest hook accepting any of the given bearer tokens, compared in constant time.
 * `undefined` means authentication is off (the logged local or insecure mode). Callback style:
 * it runs on every webhook, and an async hook costs a promise per request.
 */
export function requireBearer (tokens: readonly string[] | undefined) {
  return (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    if (tokens === undefined) { done(); return }
    const header = request.headers.authorization
    const given = bearerToken(header)
    let ok = false
    for (const token of tokens) ok = (given !== undefined && matches(given, token)) || ok
    if (ok) { done(); return }
    void reply.code(401).header('www-authenticate', 'Bearer').send({
      statusCode: 401,
      error: 'Unauthorized',
      message: header === undefined ? 'missing Authorization: Bearer header' : 'invalid bearer token'
    })
  }
}
