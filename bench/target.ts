import Fastify from 'fastify'
import { buildTestApp } from '../test/support/app.ts'

/**
 * One HTTP server for the throughput comparison, in its own process so that the load generator
 * does not share its event loop: `ours` is the real app on the simulated cluster, `bare` a plain
 * Fastify route that parses the JSON body and answers 202.
 */
const kind = process.argv[2]
let app
if (kind === 'ours') {
  ({ app } = await buildTestApp({ MIN_FIRING_AGE: '0s' }))
} else if (kind === 'bare') {
  app = Fastify()
  app.post('/v1/alerts', async (_request, reply) => reply.code(202).send({ ok: true }))
} else {
  throw new Error('usage: target.ts ours|bare')
}
await app.listen({ host: '127.0.0.1', port: 0 })
process.stdout.write(`${(app.server.address() as { port: number }).port}\n`)
process.on('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
