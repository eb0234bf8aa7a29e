import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, onResponseHookHandler } from 'fastify'
import { Counter, Histogram, type Registry } from 'prom-client'

/**
 * `shc_http_requests_total{route,method,status}` and `shc_http_request_duration_seconds{route}`,
 * labelled by route pattern (`/v1/nodes/:name`), never by URL, so the series stay few. Each route
 * registered after this call gets an onResponse hook that knows its route already: per request
 * that is one counter increment and one histogram observation (~0.3 µs). URLs that match no
 * route are not counted.
 */
export function countRequests (fastify: FastifyInstance, registry: Registry): void {
  const requests = new Counter({
    name: 'shc_http_requests_total',
    help: 'HTTP requests answered, by route pattern, method and status code.',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry]
  })
  const duration = new Histogram({
    name: 'shc_http_request_duration_seconds',
    help: 'Time from receiving a request to the end of its response, by route pattern.',
    labelNames: ['route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry]
  })
  fastify.addHook('onRoute', route => {
    const labels = { route: route.url }
    // Zero series from the start, so that rate() and histogram_quantile() work from the first scrape.
    duration.zero(labels)
    const observe = duration.labels(labels).observe
    const count: onResponseHookHandler = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
      requests.inc({ route: labels.route, method: request.method, status: String(reply.statusCode) })
      observe(reply.elapsedTime / 1000)
      done()
    }
    route.onResponse = route.onResponse === undefined ? [count] : [count, ...[route.onResponse].flat()]
  })
}
