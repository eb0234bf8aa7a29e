import t from 'tap'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { requireBearer } from '../../src/http/auth.ts'

/** Runs the hook on one Authorization header: 'pass' when it calls done, else the status it sent. */
function check (tokens: readonly string[] | undefined, authorization: string | undefined): 'pass' | number {
  let status: number | undefined
  let passed = false
  const reply = {
    code (code: number) { status = code; return reply },
    header () { return reply },
    send () { return reply }
  }
  const request = { headers: authorization === undefined ? {} : { authorization } }
  requireBearer(tokens)(request as FastifyRequest, reply as unknown as FastifyReply, () => { passed = true })
  return passed ? 'pass' : status!
}

t.test('accepts exactly the configured tokens, with the scheme in any case and spaces around', async t => {
  const tokens = ['s3cret-token', 'other-token']
  for (const header of ['Bearer s3cret-token', 'bearer other-token', 'BEARER s3cret-token', 'Bearer   s3cret-token  ', 'Bearer\ts3cret-token']) {
    t.equal(check(tokens, header), 'pass', header)
  }
})

t.test('rejects prefixes, extensions, other schemes and malformed headers with 401', async t => {
  const tokens = ['s3cret-token']
  for (const header of [undefined, '', 'Bearer', 'Bearer ', 'Bearer s3cret-toke', 'Bearer s3cret-tokenn', 'Bearer S3CRET-TOKEN', 'Basic s3cret-token', 's3cret-token', 'Bearer s3cret -token', 'Bearer s3cret-token extra', 'Bearers3cret-token']) {
    t.equal(check(tokens, header), 401, String(header))
  }
  t.equal(check([], 'Bearer s3cret-token'), 401, 'no tokens accepts nothing')
})

t.test('no token list means authentication is off', async t => {
  t.equal(check(undefined, undefined), 'pass')
  t.equal(check(undefined, 'Bearer anything'), 'pass')
})
