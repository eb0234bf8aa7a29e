import type { V1Node } from '@kubernetes/client-node'

/** What the machine behind a drained node needs. `none` leaves the machine alone. */
export type ProviderAction = 'reboot' | 'replace' | 'none'

export type ProviderRequest = {
  node: V1Node
  action: ProviderAction
  /** Stable for one remediation of one node: a second call with the same id must not act twice. */
  remediationId: string
  /** Aborted at the remediation's deadline or on shutdown. */
  signal: AbortSignal
}

export type ProviderResult = {
  /** Human-readable account of what was done (or found already done); goes into Events and the API. */
  detail: string
  /**
   * What became of the machine:
   * - `restarted`: restarted in place (a reboot, or a machine swapped behind the same node): the
   *   node stays cordoned until it reports Ready on a new boot;
   * - `replacing`: being replaced elsewhere: the node stays cordoned until the cloud removes it;
   * - `not-performed`: nothing was done (action `none`, a machine already gone): never a fix.
   */
  outcome: 'restarted' | 'replacing' | 'not-performed'
}

/** A provider call that did not do what was asked. `retryable` marks throttling and 5xx-like faults. */
export class ProviderError extends Error {
  readonly retryable: boolean
  constructor (message: string, options: { retryable: boolean, cause?: unknown }) {
    super(message, { cause: options.cause })
    this.name = 'ProviderError'
    this.retryable = options.retryable
  }
}

/** Fixes or replaces the machine behind a node after it has been drained. One module per cloud. */
export type Provider = {
  readonly name: string
  remediate (request: ProviderRequest): Promise<ProviderResult>
}
