import { buildApp } from '../../src/http/app.ts'
import type { Credentials } from '../../src/config.ts'
import { policyOf } from '../../src/config.ts'
import { seededSim, startEngine } from './sim.ts'

export const webhookToken = 's3cret-token'
export const faultsToken = 'fault-token'
export const adminToken = 'admin-token'

/** The app as main.ts builds it, on a seeded simulated cluster with test settings; `now`: one clock for the engine and the app. */
export async function buildTestApp (settings: Record<string, string> = {}, options: { credentials?: Credentials | undefined, faultsEnabled?: boolean, bodyLimit?: number, now?: () => number } = {}) {
  const sim = seededSim()
  const harness = startEngine(sim, settings, options.now === undefined ? {} : { now: options.now })
  const credentials = 'credentials' in options ? options.credentials : { webhook: webhookToken, faults: faultsToken, admin: adminToken }
  const app = await buildApp({
    engine: harness.engine,
    metrics: harness.metrics,
    policy: policyOf(harness.config),
    credentials,
    faultsEnabled: options.faultsEnabled ?? false,
    dryRun: harness.config.dryRun,
    bodyLimit: options.bodyLimit ?? harness.config.bodyLimit,
    ...(options.now === undefined ? {} : { now: options.now }),
    ready: async () => {
      await sim.listNodes()
      return harness.engine.recovered ? { ready: true, reason: 'ok' } : { ready: false, reason: 'recovering' }
    }
  })
  const close = async () => { await app.close(); await harness.engine.stop(); sim.close() }
  return { app, sim, ...harness, close }
}

export const fixtureUrl = (name: string) => new URL(`../../../shared/fixtures/alertmanager-0.25/${name}`, import.meta.url)
