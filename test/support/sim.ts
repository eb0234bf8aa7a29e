import { pino } from 'pino'
import { engineConfigOf } from '../../src/config.ts'
import { createShadowCluster, dryRunProvider } from '../../src/dry-run.ts'
import { createMetrics } from '../../src/metrics.ts'
import type { Provider } from '../../src/providers/provider.ts'
import { createEngine, type EngineDeps } from '../../src/remediation/engine.ts'
import { createSimCluster, type SimCluster, type SimOptions } from '../../src/sim/cluster.ts'
import { createSimProvider } from '../../src/sim/provider.ts'
import { seedTopology } from '../../src/sim/topology.ts'
import { defaultConfig } from './core.ts'

export const prefix = 'self-healing-controller.io'

/** Settings that keep the engine's real timers short in tests; each test overrides what it studies. */
export const fastSettings: Record<string, string> = {
  MIN_FIRING_AGE: '0s',
  POOL_SPACING: '0s',
  STORM_SETTLE: '0s',
  VERIFY_DWELL: '0s',
  DRAIN_TIMEOUT: '3s',
  EVICTION_BACKOFF: '20ms',
  EVICTION_BACKOFF_MAX: '100ms',
  RECONCILE_INTERVAL: '1h'
}

export function seededSim (options: Partial<SimOptions> = {}): SimCluster {
  const sim = createSimCluster({ terminationDelayMs: 20, startDelayMs: 20, retryAfterMs: 30, ...options })
  seedTopology(sim, { poolLabel: 'pool', zoneLabel: 'topology.kubernetes.io/zone', excludeAnnotation: `${prefix}/drain-exclude` })
  return sim
}

export type Harness = ReturnType<typeof startEngine>

/** An engine on a simulated cluster, as main.ts composes it but with test settings and a silent log. */
export function startEngine (sim: SimCluster, settings: Record<string, string> = {}, extra: Partial<Pick<EngineDeps, 'provider' | 'prometheusCheck' | 'alertmanager' | 'now' | 'startAsLeader' | 'leaseValid' | 'gates'>> = {}) {
  const config = defaultConfig({ ...fastSettings, ...settings })
  const metrics = createMetrics()
  const simProvider = createSimProvider(sim, { delayMs: 10 })
  const provider: Provider = extra.provider ?? simProvider
  delete extra.provider
  const engine = createEngine({
    cluster: config.dryRun ? createShadowCluster(sim, pino({ level: 'silent' })) : sim,
    provider: config.dryRun ? dryRunProvider(provider) : provider,
    metrics,
    log: pino({ level: 'silent' }),
    config: engineConfigOf(config),
    ...extra
  })
  engine.start()
  return { engine, metrics, config, simProvider }
}

export async function phaseOf (sim: SimCluster, node: string): Promise<string | undefined> {
  return (await sim.getNode(node))?.metadata?.annotations?.[`${prefix}/phase`]
}

/** Waits for a condition with a deadline; for states reached through real (short) timers. */
export async function until (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}
