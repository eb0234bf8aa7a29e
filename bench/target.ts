import { resourceUsage } from 'node:process'
import Fastify from 'fastify'
import { buildTestApp } from '../test/support/app.ts'

/**
 * One HTTP server for the comparison, in its own process so that the load generator does not
 * share its event loop: `ours` is the real app on the simulated cluster, `bare` a plain Fastify
 * route that parses the JSON body and answers 202. Asked 'usage' over IPC, it answers with its
 * own CPU time and peak RSS, which the benchmark reads around each measured window.
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
process.on('message', message => {
  if (message === 'usage') process.send!({ cpu: process.cpuUsage(), maxRssBytes: resourceUsage().maxRSS * 1024 })
})
process.send!({ port: (app.server.address() as { port: number }).port })
process.on('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
