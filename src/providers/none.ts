import { ProviderError } from './provider.ts'
import type { Provider, ProviderRequest, ProviderResult } from './provider.ts'

/**
 * The provider for clusters where the controller only cordons and drains: it never touches the machine,
 * whatever action is asked for, and says so in the detail. Trivially idempotent.
 */
export const noneProvider: Provider = {
  name: 'none',
  async remediate (request: ProviderRequest): Promise<ProviderResult> {
    const node = request.node.metadata?.name ?? '(unnamed)'
    if (request.signal.aborted) {
      const reason: unknown = request.signal.reason
      throw new ProviderError(`none: ${request.action} of node ${node} aborted: ${reason instanceof Error ? reason.message : String(reason)}`, { retryable: false, cause: reason })
    }
    const asked = request.action === 'none' ? 'no machine action was requested' : `requested action '${request.action}' was not performed`
    return { detail: `provider 'none': left the machine behind node ${node} alone (${asked}; remediation ${request.remediationId})`, outcome: 'not-performed' }
  }
}
