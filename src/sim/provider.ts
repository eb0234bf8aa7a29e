import { ProviderError, type Provider, type ProviderResult } from '../providers/provider.ts'
import { sleep } from '../timers.ts'
import type { SimCluster } from './cluster.ts'

/**
 * The machine behind a simulated node. `replace` swaps the machine in place, keeping the node's
 * name (as GKE's node repair does): the node is down for a moment and comes back on a new machine
 * and a new boot, so the walkthrough can watch it come back, be verified and cool down.
 * Idempotent per remediationId, like every provider.
 */
export function createSimProvider (sim: SimCluster, options: { delayMs: number }): Provider & { actions: Array<{ node: string, action: string }> } {
  const done = new Map<string, ProviderResult>()
  const actions: Array<{ node: string, action: string }> = []
  let machines = 100
  return {
    name: 'sim',
    actions,
    async remediate ({ node, action, remediationId, signal }) {
      const name = node.metadata!.name!
      const aborted = () => new ProviderError(`sim: ${action} of ${name} aborted`, { retryable: false, cause: signal.reason })
      if (signal.aborted) throw aborted()
      const previous = done.get(remediationId)
      if (previous !== undefined) return { ...previous, detail: `${previous.detail} (already done for ${remediationId})` }
      if (action === 'none') return { detail: 'provider action none: machine left as it is', outcome: 'not-performed' }
      await sleep(options.delayMs, signal).catch(() => { throw aborted() })
      actions.push({ node: name, action })
      let result: ProviderResult
      if (action === 'reboot') {
        sim.rebootNode(name, options.delayMs)
        result = { detail: `simulated machine of ${name} rebooted`, outcome: 'restarted' }
      } else {
        const current = await sim.getNode(name)
        const zone = current?.spec?.providerID?.split('/')[3] ?? 'zone'
        const providerID = `sim:///${zone}/machine-${++machines}`
        sim.setProviderID(name, providerID)
        sim.rebootNode(name, options.delayMs)
        result = { detail: `simulated machine of ${name} replaced in place by ${providerID}`, outcome: 'restarted' }
      }
      done.set(remediationId, result)
      return result
    }
  }
}
