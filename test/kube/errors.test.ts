import t from 'tap'
import { ApiException } from '@kubernetes/client-node'
import { ClusterError, isClusterError } from '../../src/cluster.ts'
import { isNetworkError, retryAfterMsOf, statusOf, toClusterError } from '../../src/kube/errors.ts'

// Shapes as client-node 2.x builds them: the body is the raw JSON text, header names are lower-case.
const status = (code: number, message: string, retryAfterSeconds?: number) => JSON.stringify({
  kind: 'Status', apiVersion: 'v1', status: 'Failure', message, code,
  details: retryAfterSeconds === undefined ? {} : { retryAfterSeconds }
})
const apiError = (code: number, body: unknown, headers: Record<string, string> = {}) => new ApiException<unknown>(code, 'Unknown API Status Code!', body, headers)

t.test('the Status message and Retry-After come out of an ApiException', async t => {
  const err = apiError(429, status(429, 'Cannot evict pod as it would violate the pod\'s disruption budget.'), { 'retry-after': '7' })
  t.equal(statusOf(err)?.message, 'Cannot evict pod as it would violate the pod\'s disruption budget.')
  t.equal(retryAfterMsOf(err), 7000)
  const now = Date.parse('2026-11-23T12:00:00Z')
  t.equal(retryAfterMsOf(apiError(429, '', { 'retry-after': 'Mon, 23 Nov 2026 12:00:05 GMT' }), now), 5000, 'an HTTP date')
  t.equal(retryAfterMsOf(apiError(429, status(429, 'still being processed', 10))), 10_000, 'details.retryAfterSeconds without a header')
  t.equal(retryAfterMsOf(apiError(429, status(429, 'no hint', 0))), undefined, 'no hint at all')
  t.same(statusOf(apiError(500, 'not json')), { message: 'not json' }, 'a body that is not JSON is the message')
  t.equal(statusOf(apiError(401, undefined)), undefined, '401 carries no body')
})

t.test('HTTP statuses map onto ClusterError kinds', async t => {
  const kinds: Array<[number, string]> = [[404, 'not-found'], [409, 'conflict'], [429, 'unavailable'], [500, 'unavailable'], [503, 'unavailable'], [403, 'invalid'], [422, 'invalid'], [400, 'invalid']]
  for (const [code, kind] of kinds) {
    const mapped = toClusterError(apiError(code, status(code, `answer ${code}`)), 'do it')
    t.ok(mapped instanceof ClusterError && mapped.kind === kind, `${code} → ${kind}`)
    t.match((mapped as Error).message, new RegExp(`^do it: HTTP ${code}: answer ${code}$`))
  }
  const watchError = Object.assign(new Error('Gone'), { statusCode: 410 })
  t.ok(isClusterError(toClusterError(watchError, 'watch'), 'not-found'), 'Watch errors carry statusCode')
})

t.test('network faults are unavailable; anything else is passed through', async t => {
  const refused = new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }) })
  t.ok(isNetworkError(refused))
  t.ok(isNetworkError(new TypeError('fetch failed', { cause: new AggregateError([Object.assign(new Error('x'), { code: 'ETIMEDOUT' })]) })), 'happy eyeballs')
  t.ok(isNetworkError(new Error('socket hang up')))
  t.ok(isNetworkError(Object.assign(new Error('headers'), { code: 'UND_ERR_HEADERS_TIMEOUT' })))
  const mapped = toClusterError(refused, 'get node a')
  t.ok(isClusterError(mapped, 'unavailable'))
  t.match((mapped as Error).message, /get node a: API server unreachable: connect ECONNREFUSED/)
  const bug = new RangeError('a bug')
  t.equal(toClusterError(bug, 'x'), bug, 'a programming error is not disguised')
  const already = new ClusterError('conflict', 'x')
  t.equal(toClusterError(already, 'y'), already)
})
