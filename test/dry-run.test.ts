import t from 'tap'
import { noneProvider } from '../src/providers/none.ts'
import type { Decision } from '../src/remediation/intake.ts'
import { iso } from '../src/time.ts'
import { alert, minutes } from './support/core.ts'
import { phaseOf, seededSim, startEngine, until } from './support/sim.ts'

/**
 * DRY_RUN tells the truth: one sequence of notifications through a real run (PROVIDER=none, which
 * also fixes nothing) and through a dry run of an identical cluster gives the same decision every
 * time and the same phases, while the dry run's cluster sees no write at all.
 */
t.test('a dry run answers every notification as the real run does, and writes nothing', async t => {
  const settings = { MAX_CONCURRENT_DRAINS: '1', STORM_SETTLE: '0s', BREAKER_MIN_NODES: '3', BREAKER_THRESHOLD: '0.5' }
  const realSim = seededSim()
  const drySim = seededSim()
  const real = startEngine(realSim, settings, { provider: noneProvider })
  const dry = startEngine(drySim, { ...settings, DRY_RUN: 'true' })
  t.teardown(async () => { await real.engine.stop(); await dry.engine.stop(); realSim.close(); drySim.close() })
  const startsAt = iso(Date.now() - minutes(10))
  const a = (node: string, extra: Parameters<typeof alert>[1] = {}) => alert(node, { startsAt, ...extra })
  const resolved = (node: string) => ({ ...a(node), status: 'resolved' as const, endsAt: iso(Date.now()) })
  const both = async (alerts: ReturnType<typeof a>[]) => {
    const [r, d] = await Promise.all([real.engine.intake(alerts, 'alertmanager', false), dry.engine.intake(alerts, 'alertmanager', false)])
    return [r, d] as [Decision[], Decision[]]
  }
  const steps: Array<() => Promise<[Decision[], Decision[]] | undefined>> = [
    () => both([a('worker-6')]),
    () => both([a('worker-6')]),
    async () => { await until('worker-6 held in both', async () => await phaseOf(realSim, 'worker-6') === 'failed' && (await dry.engine.node('worker-6'))?.phase === 'failed'); return undefined },
    () => both([a('worker-7')]),
    () => both([a('worker-1')]),
    () => both([a('worker-2')]),
    () => both([a('worker-3')]),
    () => both([a('worker-3')]),
    () => both([resolved('worker-7')]),
    () => both([resolved('worker-7')]),
    () => both([a('worker-8', { labels: { remediation: 'nope' } })])
  ]
  let compared = 0
  for (const step of steps) {
    const result = await step()
    if (result === undefined) continue
    const [r, d] = result
    t.same(d.map(x => [x.action, x.rule, x.reason]), r.map(x => [x.action, x.rule, x.reason]), `decision ${++compared}: ${r.map(x => `${x.action}/${x.rule ?? ''}`).join(', ')}`)
  }
  await new Promise(resolve => setTimeout(resolve, 300))
  await Promise.all([real.engine.idle(), dry.engine.idle()])
  const phases = async (list: () => Promise<Array<{ name: string, phase: string }>>) => Object.fromEntries((await list()).map(n => [n.name, n.phase]))
  t.same(await phases(() => dry.engine.nodes()), await phases(() => real.engine.nodes()), 'GET /v1/nodes shows what the real run did')
  t.ok(realSim.mutations.some(m => m.startsWith('patch node')), 'the real run wrote')
  t.same(drySim.mutations, [], 'the dry run wrote nothing: no patch, no eviction, no Event, no fleet state')
})
