import type { FastifyInstance, onRequestHookHandler, onSendHookHandler } from 'fastify'
import { Counter, Histogram, type Registry } from 'prom-client'

declare module 'fastify' {
  interface FastifyRequest {
    /** performance.now() when the first hook of the route ran: where the request duration starts. */
    receivedAt: number
  }
}

type Tally = { labels: { route: string, method: string, status: string }, count: number, published: number }

/**
 * `shc_http_requests_total{route,method,status}` and `shc_http_request_duration_seconds{route}`,
 * labelled by route pattern (`/v1/nodes/:name`), never by URL, so the series stay few. Each route
 * registered after this call gets a first onRequest hook that notes the time and a last onSend
 * hook that counts and observes, both knowing their route already. onSend rather than
 * onResponse: an onResponse hook makes Fastify put listeners on every response and run its
 * request-completed logging path, which cost more than the counting itself. So the duration ends
 * when the response is handed to the socket. URLs that match no route are not counted.
 *
 * Requests are tallied in plain numbers (by method, then status code) and added to the counter
 * when it is scraped: prom-client builds and looks up a label key on every `inc`, a third of a
 * microsecond per webhook here, where the whole budget of our route over a bare one is a few.
 */
export function countRequests (fastify: FastifyInstance, registry: Registry): void {
  const tallies: Tally[] = []
  new Counter({
    name: 'shc_http_requests_total',
    help: 'HTTP requests answered, by route pattern, method and status code.',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
    collect () {
      for (const tally of tallies) {
        if (tally.count > tally.published) this.inc(tally.labels, tally.count - tally.published)
        tally.published = tally.count
      }
    }
  })
  const duration = new Histogram({
    name: 'shc_http_request_duration_seconds',
    help: 'Time from the first hook of a request to its response being handed to the socket, by route pattern.',
    labelNames: ['route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry]
  })
  fastify.decorateRequest('receivedAt', 0)
  fastify.addHook('onRoute', route => {
    // Zero series from the start, so that rate() and histogram_quantile() work from the first scrape.
    duration.zero({ route: route.url })
    const observe = duration.labels({ route: route.url }).observe
    const byMethod = new Map<string, Map<number, Tally>>()
    const tally = (method: string, status: number): Tally => {
      let byStatus = byMethod.get(method)
      if (byStatus === undefined) byMethod.set(method, byStatus = new Map())
      let found = byStatus.get(status)
      if (found === undefined) {
        found = { labels: { route: route.url, method, status: String(status) }, count: 0, published: 0 }
        byStatus.set(status, found)
        tallies.push(found)
      }
      return found
    }
    const start: onRequestHookHandler = (request, _reply, done) => {
      request.receivedAt = performance.now()
      done()
    }
    const count: onSendHookHandler = (request, reply, payload, done) => {
      tally(request.method, reply.statusCode).count++
      observe((performance.now() - request.receivedAt) / 1000)
      done(null, payload)
    }
    route.onRequest = [start, ...[route.onRequest ?? []].flat()]
    route.onSend = [...[route.onSend ?? []].flat(), count]
  })
}
