import { performance } from 'node:perf_hooks'
import type { WebhookPayload } from '../src/alerts/webhook.ts'
import { toNodeAlert } from '../src/alerts/node-alert.ts'
import { decide, triage } from '../src/remediation/intake.ts'
import { nextToStart } from '../src/remediation/schedule.ts'
import { iso } from '../src/time.ts'
import { readFileSync } from 'node:fs'
import { fleet, fleetOf, minutes, policy, T0 } from '../test/support/core.ts'
import { fixtureUrl } from '../test/support/app.ts'
import { median } from './median.ts'

/** Both sides are measured alternately, so that garbage collection and CPU frequency weigh on both alike. */
function timeBoth (a: () => unknown, b: () => unknown, runs: number): [number, number] {
  for (let i = 0; i < 5; i++) { a(); b() }
  const samples: [number[], number[]] = [[], []]
  for (let i = 0; i < runs; i++) {
    for (const [side, fn] of [a, b].entries()) {
      const start = performance.now()
      fn()
      samples[side]!.push(performance.now() - start)
    }
  }
  return [median(samples[0]), median(samples[1])]
}

/** Triage of one 5,000-alert notification over a 5,000-node fleet, against JSON.parse of the same text. */
export function benchTriage (runs = 40) {
  const views = fleet({ app: 2500, data: 2500 })
  const names = [...views.keys()]
  // Every alert shaped like the one Alertmanager 0.25 really sent (same labels and annotations).
  const captured = JSON.parse(readFileSync(fixtureUrl('firing-single.json'), 'utf8')) as WebhookPayload
  const template = captured.alerts[0]!
  const payload: WebhookPayload = {
    ...captured,
    alerts: names.map((node, i) => ({
      ...template,
      labels: { ...template.labels, node, instance: `10.0.${i >> 8}.${i & 255}:9100` },
      annotations: { ...template.annotations, summary: `Disk IOPS saturated on ${node}` },
      startsAt: iso(T0 - minutes(10 + (i % 7))),
      fingerprint: i.toString(16).padStart(16, '0')
    }))
  }
  const text = JSON.stringify(payload)
  const config = policy()
  const index = fleetOf(views.values(), config)
  const parsed = JSON.parse(text) as WebhookPayload
  // What the engine does with a notification before it writes: normalise, decide per node, and
  // answer each pending node from the fleet-wide schedule.
  const decideAll = () => {
    const alerts = parsed.alerts.map(a => toNodeAlert(a, config))
    const { outcomes } = triage(alerts, index, T0, config)
    const schedule = nextToStart(index, T0, config)
    return decide(alerts, outcomes, name => schedule.blocked.get(name))
  }
  const [parseMs, triageMs] = timeBoth(() => JSON.parse(text), decideAll, runs)
  if (decideAll().length !== 5000) throw new Error('triage lost alerts')
  return {
    name: 'triage of one 5,000-alert notification (5,000 nodes) vs JSON.parse of it',
    payloadBytes: text.length,
    jsonParseMs: Number(parseMs.toFixed(2)),
    triageMs: Number(triageMs.toFixed(2)),
    ratio: triageMs / parseMs,
    target: '<= 3',
    pass: triageMs / parseMs <= 3
  }
}
