import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'

/** Bodies up to this size are admitted without counting: the shipped route sends about 1 KB. */
export const smallBodyBytes = 64 * 1024

export type AdmissionOptions = {
  /** The route's body limit: a longer declared body is left to Fastify's 413. */
  bodyLimit: number
  /** Bytes of large bodies in flight (being read, parsed, decided) at once. */
  budget: number
}

/**
 * An onRequest hook bounding the large bodies in flight. A parsed notification holds several
 * times its size in memory, and parsing blocks the event loop: 24 concurrent 5 MB notifications
 * took the process past its 512Mi limit and kept /healthz waiting 7 s. A large body is admitted
 * while the bytes in flight stay within the budget (one is always admitted, whatever its size);
 * the others get a 503 with Retry-After before their body is read, which Alertmanager retries
 * (it drops 4xx). A body without Content-Length (chunked) counts as `bodyLimit`.
 * Callback style: it runs on every webhook.
 */
export function admitLargeBodies ({ bodyLimit, budget }: AdmissionOptions) {
  let inFlight = 0
  return (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    const declared = request.headers['content-length']
    const bytes = declared === undefined ? bodyLimit : Number(declared)
    if (bytes <= smallBodyBytes || bytes > bodyLimit) { done(); return }
    if (inFlight > 0 && inFlight + bytes > budget) {
      void reply.code(503).header('retry-after', '1').send({
        statusCode: 503,
        error: 'Service Unavailable',
        message: `busy: ${inFlight} bytes of large notifications are being handled (budget ${budget}); retry`
      })
      return
    }
    inFlight += bytes
    // 'close' comes once the response is sent or the connection is gone, whichever happens.
    reply.raw.once('close', () => { inFlight -= bytes })
    done()
  }
}
