import { readFileSync } from 'node:fs'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import { policyOf } from '../../src/config.ts'
import { defaultConfig } from '../support/core.ts'
import { buildTestApp, fixtureUrl, webhookToken } from '../support/app.ts'

/**
 * The webhook under mutated notifications, seeded. Every payload is judged by a reference
 * written here from the payload format (alertmanager.md), with Date as the oracle for times, not
 * from the schema.
 * - 100,000 payloads go through the route's own compiled validator (its Ajv, options, formats):
 *   the verdict must match the reference, and validation must leave the payload as it was (no
 *   coercion, no dropped field).
 * - 1,500 more, as text (so with duplicate keys, broken JSON and prototype keys too), go through
 *   the real app on a fresh simulated cluster per batch of 25: never a 5xx, 202 exactly when the
 *   reference says valid; a node is written (object, patch, Event) only when a valid opted-in
 *   alert of an accepted notification names it, and acted on (cordoned, pods evicted, rebooted,
 *   replaced) only when a firing one does.
 * - 2,500 more through one long-lived app whose alerts name only half the fleet: the other half
 *   is never touched, and the heap after GC stays bounded.
 */
const seed = 0x5eed2026
const validatorPayloads = 100_000
const appBatches = 60
const perBatch = 25
const longRun = 2_500

/** mulberry32: small, fast, seedable. */
function random (state: number) {
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let x = Math.imul(state ^ (state >>> 15), 1 | state)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

const config = defaultConfig()
const policy = policyOf(config)
const allNodes = Array.from({ length: 10 }, (_, i) => `worker-${i + 1}`)
const capturedText = ['firing-single.json', 'resolved-single.json'].map(name => readFileSync(fixtureUrl(name), 'utf8'))
const captured = capturedText.map(text => JSON.parse(text))

// ---- the reference --------------------------------------------------------------------------

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const isStringMap = (v: unknown) => isObject(v) && Object.values(v).every(x => typeof x === 'string')
const isStatus = (v: unknown) => v === 'firing' || v === 'resolved'
const optional = (o: Record<string, unknown>, key: string, check: (v: unknown) => boolean) => !Object.hasOwn(o, key) || check(o[key])

const times = new Map<string, boolean>()

/** RFC 3339 with a T, read back by Date field for field (so no 30 February, no hour 24). */
function isTime (v: unknown): boolean {
  if (typeof v !== 'string') return false
  let known = times.get(v)
  if (known === undefined) {
    if (times.size >= 10_000) times.clear()
    times.set(v, known = readsBack(v))
  }
  return known
}

function readsBack (v: string): boolean {
  const m = /^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.\d+)?(?:[Zz]|([+-])(\d\d):(\d\d))$/.exec(v)
  if (m === null) return false
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  const offset = m[7] === undefined ? 0 : (m[7] === '+' ? 1 : -1) * (Number(m[8]) * 60 + Number(m[9]))
  const ms = Date.parse(v)
  const d = new Date(ms + offset * 60_000)
  return Number.isFinite(ms) && Number(m[8] ?? 0) < 24 && Number(m[9] ?? 0) < 60 && d.getUTCFullYear() === year && d.getUTCMonth() + 1 === month &&
    d.getUTCDate() === day && d.getUTCHours() === hour && d.getUTCMinutes() === minute && d.getUTCSeconds() === second
}

function isAlert (a: unknown): boolean {
  if (!isObject(a)) return false
  const fingerprint = a.fingerprint
  return isStatus(a.status) && isStringMap(a.labels) && optional(a, 'annotations', isStringMap) &&
    isTime(a.startsAt) && Number((a.startsAt as string).slice(0, 4)) > 1000 && optional(a, 'endsAt', isTime) &&
    optional(a, 'generatorURL', v => typeof v === 'string') &&
    typeof fingerprint === 'string' && [...fingerprint].length >= 1 && [...fingerprint].length <= 128
}

function isValid (p: unknown): boolean {
  if (!isObject(p)) return false
  const string = (v: unknown) => typeof v === 'string'
  return p.version === '4' && isStatus(p.status) && Array.isArray(p.alerts) && p.alerts.every(isAlert) &&
    optional(p, 'receiver', string) && optional(p, 'groupKey', string) && optional(p, 'externalURL', string) &&
    optional(p, 'truncatedAlerts', v => Number.isInteger(v) && (v as number) >= 0) &&
    optional(p, 'groupLabels', isStringMap) && optional(p, 'commonLabels', isStringMap) && optional(p, 'commonAnnotations', isStringMap)
}

/**
 * What a valid notification may do, by node. A valid opted-in alert may have its node's record
 * written, resolved ones included (a resolved episode is remembered, so that its late firing is
 * ignored); only a firing one may act on the node: cordon, evict, reboot or replace it.
 */
function allowedBy (p: { alerts: Array<{ status: string, labels: Record<string, string> }> }): { record: string[], act: string[] } {
  const record: string[] = []
  const act: string[] = []
  for (const a of p.alerts) {
    const node = policy.nodeLabels.map(name => a.labels[name]).find(v => v !== undefined && v !== '')
    if (node === undefined || !Object.hasOwn(policy.optInActions, a.labels[policy.optInLabel] ?? '')) continue
    record.push(node)
    if (a.status === 'firing') act.push(node)
  }
  return { record, act }
}

// ---- the mutator ----------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

/** Mutated notifications from a seeded generator; alerts name the given nodes (and one that does not exist). */
function mutator (next: () => number, nodes: readonly string[] = allNodes) {
  const int = (n: number) => Math.floor(next() * n)
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!
  const pad = (n: number, width = 2) => String(n).padStart(width, '0')
  const unicode = () => pick(['é', 'ß', '工作', '🔥', '\u0000', '\u200b', '\u202e', '\ud800', '\udfff', '\ufeff', '\n', '"', '\\', ' '])
  const time = (): string => {
    const year = pick([1, 999, 1000, 1001, 1970, 2000, 2024, 2026, 2100, 9999, int(10_000)])
    const month = pick([1, 2, 4, 6, 9, 11, 12, 0, 13, 1 + int(12)])
    const day = pick([1, 28, 29, 30, 31, 0, 32, 1 + int(31)])
    const hour = pick([0, 12, 23, 24, int(24)])
    const minute = pick([0, 59, 60, int(60)])
    const second = pick([0, 59, 60, int(60)])
    const fraction = pick(['', '', '.5', '.123', '.123456789', '.1234567890123', '.'])
    const zone = pick(['Z', 'Z', 'z', '+00:00', '-05:00', '+05:30', '+23:59', '+24:00', '-00:60', '', '+0530'])
    return `${pad(year, 4)}-${pad(month)}-${pad(day)}${pick(['T', 'T', 't', ' ', '_'])}${pad(hour)}:${pad(minute)}:${pad(second)}${fraction}${zone}`
  }
  const scalar = (): Json => pick<() => Json>([
    () => null, () => true, () => false, () => 0, () => -1, () => 1.5, () => 4, () => 1e20, () => 1e308, () => -0,
    () => '', () => 'x', () => '4', () => 'firing', () => 'resolved', () => 'drain', () => pick(nodes), () => time(),
    () => unicode().repeat(1 + int(5)), () => 'a'.repeat(pick([127, 128, 129, 1000]))
  ])()
  const value = (depth = 0): Json => {
    const r = next()
    if (r < 0.6 || depth > 2) return scalar()
    if (r < 0.8) return Array.from({ length: int(3) }, () => value(depth + 1))
    return Object.fromEntries(Array.from({ length: int(3) }, () => [pick(['a', 'status', 'node', '__proto__', 'constructor', '']), value(depth + 1)]))
  }
  /** An own property, as JSON.parse makes one: plain assignment to `__proto__` would set the prototype instead. */
  const set = (at: Record<string, Json> | Json[], key: string | number, v: Json) => { Object.defineProperty(at, key, { value: v, enumerable: true, writable: true, configurable: true }) }
  const nested = (inner: Json, depth: number): Json => depth === 0 ? inner : next() < 0.5 ? [nested(inner, depth - 1)] : { x: nested(inner, depth - 1) }

  /** A valid notification built from a captured alert: 1–5 alerts on chosen nodes, firing or resolved. */
  const base = (): Record<string, Json> => {
    const which = int(captured.length)
    const template = captured[which]
    if (next() < 0.3) return JSON.parse(capturedText[which]!)
    const [alert] = template.alerts
    const alerts = Array.from({ length: 1 + int(5) }, (_, i) => {
      const firing = next() < 0.7
      return {
        ...alert,
        status: firing ? 'firing' : 'resolved',
        labels: { ...alert.labels, node: pick([...nodes, 'worker-42']), remediation: pick(['drain', 'reboot', 'replace', 'drain', 'nope']) },
        startsAt: `2026-11-${pad(1 + int(28))}T${pad(int(24))}:00:00Z`,
        endsAt: firing ? '0001-01-01T00:00:00Z' : '2026-11-30T10:00:00Z',
        fingerprint: `fp-${i}-${int(1e6).toString(16)}`
      }
    })
    return { ...template, status: alerts.some(a => a.status === 'firing') ? 'firing' : 'resolved', alerts }
  }

  /** Every (container, key) in the tree: the places a mutation can land. */
  const places = (root: Json): Array<[Record<string, Json> | Json[], string | number]> => {
    const found: Array<[Record<string, Json> | Json[], string | number]> = []
    const walk = (node: Json) => {
      if (Array.isArray(node)) node.forEach((v, i) => { found.push([node, i]); walk(v) })
      else if (node !== null && typeof node === 'object') for (const key of Object.keys(node)) { found.push([node, key]); walk(node[key]!) }
    }
    walk(root)
    return found
  }

  const mutations: Array<(p: Record<string, Json>) => void> = [
    p => { const [at, key] = pick(places(p)); set(at, key, value()) },
    p => { const [at, key] = pick(places(p)); set(at, key, [(at as Record<string, Json>)[key]!]) },
    p => { const [at, key] = pick(places(p)); if (Array.isArray(at)) at.splice(key as number, 1); else delete at[key] },
    p => { const [at] = pick(places(p)); if (!Array.isArray(at)) set(at, pick(['extra', 'notification_reason', 'routeLabels', '__proto__', 'constructor', 'toString', '', '🔥']), value()) },
    p => { const [at, key] = pick(places(p)); const v = (at as Record<string, Json>)[key]; if (typeof v === 'string') set(at, key, pick([v.toUpperCase(), ` ${v}`, v.slice(0, -1), v + unicode(), v.repeat(pick([2, 50, 2000]))])) },
    p => { const a = pick((p.alerts as Json[] | undefined) ?? []) as Record<string, Json> | undefined; if (isObject(a)) a[pick(['startsAt', 'endsAt'])] = time() },
    p => { p.truncatedAlerts = pick([-1, 0, 3, 2.5, 1e20, '3', null, 9]) },
    // Many alerts: the same object repeated (what is validated is the JSON it makes).
    p => { if (Array.isArray(p.alerts) && p.alerts.length > 0) p.alerts.push(...Array<Json>(pick([1, 10, 200])).fill(pick(p.alerts))) },
    p => { p.alerts = [] },
    p => { const [at, key] = pick(places(p)); set(at, key, nested((at as Record<string, Json>)[key]!, pick([1, 5, 50, 200]))) },
    p => { const a = pick((p.alerts as Json[] | undefined) ?? []) as Record<string, Json> | undefined; if (isObject(a) && isObject(a.labels)) a.labels[pick(['node', 'kubernetes_node', 'remediation', 'alertname'])] = pick([...nodes, '', 'worker-42', 'drain', 'reboot', 'replace', 'DRAIN', ['drain'] as Json, 7]) },
    p => { const a = pick((p.alerts as Json[] | undefined) ?? []) as Record<string, Json> | undefined; if (isObject(a)) a.status = pick(['firing', 'resolved', 'Firing', 'pending', ['firing'], null]) },
    p => { p.version = pick(['4', 4, '3', ['4'], null, '4 ']) }
  ]

  return {
    /** A payload: a valid base notification with 0–4 mutations. */
    payload (): Record<string, Json> {
      const p = base()
      for (let i = pick([0, 0, 1, 1, 2, 4]); i > 0; i--) pick(mutations)(p)
      return p
    },
    /** The payload as sent: mostly JSON.stringify, sometimes edited as text (duplicate keys, truncation, prototype keys). */
    text (p: Record<string, Json>): string {
      const text = JSON.stringify(p)
      if (next() < 0.75) return text
      return pick<() => string>([
        () => text.replace('"status":', `"status":${JSON.stringify(pick(['resolved', 'firing', 4]))},"status":`),
        () => text.slice(0, int(text.length)),
        () => text.replace('{', '{"__proto__":{"polluted":true},'),
        () => text.replace('{', '{"constructor":{"prototype":{"polluted":true}},'),
        () => ` \n${text}\t`
      ])()
    }
  }
}

/** The reference's view of a text: what JSON.parse makes of it, or why Fastify's parser refuses it. */
function parse (text: string): { ok: true, value: unknown } | { ok: false } {
  try {
    const value = JSON.parse(text)
    // Fastify's JSON parser (secure-json-parse) refuses prototype poisoning with a 400.
    const poisoned = (v: unknown): boolean => typeof v === 'object' && v !== null &&
      (Object.hasOwn(v, '__proto__') || (Object.hasOwn(v, 'constructor') && isObject((v as Record<string, unknown>).constructor) && Object.hasOwn((v as Record<string, object>).constructor!, 'prototype')) || Object.values(v).some(poisoned))
    return poisoned(value) ? { ok: false } : { ok: true, value }
  } catch {
    return { ok: false }
  }
}

t.test(`${validatorPayloads.toLocaleString('en')} mutated payloads through the app's validator: verdict as the reference, payload unchanged`, async t => {
  const { app, close } = await buildTestApp()
  t.teardown(close)
  // The function the route itself validates bodies with, taken from a request to it.
  let validate: ((data: unknown) => boolean) | undefined
  app.addHook('onRequest', async request => { validate ??= request.getValidationFunction('body') as (data: unknown) => boolean })
  await app.inject({ method: 'POST', url: '/v1/alerts', payload: captured[0] })
  if (validate === undefined) throw new Error('no validation function for POST /v1/alerts')
  const { payload } = mutator(random(seed))
  const failures: string[] = []
  let accepted = 0
  for (let i = 0; i < validatorPayloads; i++) {
    const p = payload()
    const before = JSON.stringify(p)
    let verdict: boolean
    try {
      verdict = validate(p)
    } catch (err) {
      failures.push(`#${i} threw ${(err as Error).message}: ${before.slice(0, 300)}`)
      continue
    }
    if (verdict) accepted++
    if (verdict !== isValid(p)) failures.push(`#${i} validator says ${verdict}, reference ${!verdict}: ${before.slice(0, 300)}`)
    if (JSON.stringify(p) !== before) failures.push(`#${i} validation changed the payload: ${before.slice(0, 300)}`)
    if (failures.length >= 10) break
  }
  t.same(failures, [])
  t.ok(accepted > validatorPayloads * 0.1 && accepted < validatorPayloads * 0.9, `both verdicts are common (${accepted} accepted)`)
})

const send = (app: Awaited<ReturnType<typeof buildTestApp>>['app'], payload: string) =>
  app.inject({ method: 'POST', url: '/v1/alerts', headers: { authorization: `Bearer ${webhookToken}`, 'content-type': 'application/json' }, payload })

/**
 * Sends one text and checks the answer against the reference: never a 5xx, otherwise 413 when
 * over the limit, 202 when valid, 400 when not. Adds what the notification allows to `allowed`.
 */
async function sendChecked (app: Parameters<typeof send>[0], sent: string, allowed: Allowed, failures: string[], statuses: Record<number, number>): Promise<void> {
  const res = await send(app, sent)
  statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1
  const seen = parse(sent)
  const valid = seen.ok && isValid(seen.value)
  const expected = Buffer.byteLength(sent) > config.bodyLimit ? 413 : valid ? 202 : 400
  if (res.statusCode >= 500) failures.push(`${res.statusCode} ${res.body.slice(0, 200)} for ${sent.slice(0, 300)}`)
  else if (res.statusCode !== expected) failures.push(`${res.statusCode} where the reference says ${expected}: ${res.body.slice(0, 200)} for ${sent.slice(0, 300)}`)
  if (!valid || res.statusCode !== 202) return
  const { record, act } = allowedBy(seen.value as Parameters<typeof allowedBy>[0])
  for (const node of record) allowed.record.add(node)
  for (const node of act) allowed.act.add(node)
}

type Allowed = { record: Set<string>, act: Set<string> }
const nothingAllowed = (): Allowed => ({ record: new Set(), act: new Set() })
type Sim = Awaited<ReturnType<typeof buildTestApp>>['sim']

/**
 * What a stretch of requests did, by node: written (the Node object, a patch, an Event) and
 * acted on (cordoned or uncordoned, pods evicted or deleted, rebooted, replaced).
 */
async function watchChanges (sim: Sim) {
  const pods = (now: ReturnType<Sim['pods']>) => now.map((p): [string, string | undefined] => [`${p.metadata!.namespace}/${p.metadata!.name}`, p.spec?.nodeName])
  const machine = (n: Awaited<ReturnType<Sim['listNodes']>>[number]) => JSON.stringify([n.spec?.unschedulable ?? false, n.spec?.providerID, n.status?.nodeInfo?.bootID])
  const before = new Map((await sim.listNodes()).map(n => [n.metadata!.name!, { object: JSON.stringify(n), machine: machine(n) }]))
  const podNodes = new Map(pods(sim.pods()))
  const from = sim.mutations.length
  return async () => {
    // A pod's node: where it was before, or where it is now. A replacement pod created and
    // evicted in between is not attributed (its node's own writes are).
    for (const [pod, node] of pods(sim.pods())) if (!podNodes.has(pod)) podNodes.set(pod, node)
    const written = new Set<string>()
    const acted = new Set<string>()
    for (const node of await sim.listNodes()) {
      const was = before.get(node.metadata!.name!)
      if (was?.object !== JSON.stringify(node)) written.add(node.metadata!.name!)
      if (was?.machine !== machine(node)) acted.add(node.metadata!.name!)
    }
    for (const m of sim.mutations.slice(from)) {
      const [verb, kind, name] = m.split(' ') as [string, string, string]
      if (verb === 'event') written.add(kind)
      else if (kind === 'node') written.add(name)
      else if (kind === 'pod' && podNodes.get(name) !== undefined) acted.add(podNodes.get(name)!)
    }
    return { written, acted }
  }
}

/** Every node written or acted on beyond what the accepted notifications allowed. */
function beyond (allowed: Allowed, { written, acted }: { written: Set<string>, acted: Set<string> }): string[] {
  return [
    ...[...written].filter(node => !allowed.record.has(node)).map(node => `${node} was written, but no accepted notification had a valid opted-in alert for it`),
    ...[...acted].filter(node => !allowed.act.has(node)).map(node => `${node} was acted on, but no accepted notification had a valid opted-in firing alert for it`)
  ]
}

t.test(`${(appBatches * perBatch).toLocaleString('en')} of them through the real app, a fresh simulated cluster per ${perBatch}: no 5xx, 202 exactly for valid ones, a node changes only as its accepted opted-in alerts allow`, async t => {
  const { text, payload } = mutator(random(seed + 1))
  const failures: string[] = []
  const statuses: Record<number, number> = {}
  let acted = 0
  for (let batch = 0; batch < appBatches && failures.length < 10; batch++) {
    const { app, sim, close } = await buildTestApp()
    const changes = await watchChanges(sim)
    const allowed = nothingAllowed()
    for (let i = 0; i < perBatch; i++) await sendChecked(app, text(payload()), allowed, failures, statuses)
    await close()
    const changed = await changes()
    acted += changed.acted.size
    for (const failure of beyond(allowed, changed)) failures.push(`batch ${batch}: ${failure} (${sim.mutations.slice(0, 6).join('; ')}…)`)
  }
  t.same(failures, [])
  t.ok(statuses[202]! > appBatches && statuses[400]! > appBatches, `both answers are common: ${JSON.stringify(statuses)}`)
  t.ok(acted > appBatches / 2, `accepted notifications did act on nodes (${acted} times in ${appBatches} batches)`)
})

t.test(`${longRun.toLocaleString('en')} more through one app: nodes never named are never touched, heap after GC bounded`, async t => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  // Alerts name only half the fleet: the other half must come through untouched.
  const named = allNodes.slice(0, 5)
  const { text, payload } = mutator(random(seed + 2), named)
  const { app, sim, engine, close } = await buildTestApp()
  t.teardown(close)
  const failures: string[] = []
  const statuses: Record<number, number> = {}
  const allowed = nothingAllowed()
  const changes = await watchChanges(sim)
  let baseline = 0
  for (let i = 0; i < longRun && failures.length < 10; i++) {
    if (i === longRun / 10) { await engine.idle(); gc(); baseline = process.memoryUsage().heapUsed }
    await sendChecked(app, text(payload()), allowed, failures, statuses)
  }
  await engine.idle()
  gc()
  const growth = process.memoryUsage().heapUsed - baseline
  const changed = await changes()
  failures.push(...beyond(allowed, changed))
  t.same(failures, [])
  t.ok(changed.acted.size > 0, `nodes named by accepted alerts were acted on (${[...changed.acted].sort().join(' ')}); ${allNodes.slice(5).join(' ')} were never named`)
  t.ok(growth < 8 * 1024 * 1024, `heap after GC grew ${(growth / 1024 / 1024).toFixed(1)} MiB over ${longRun * 0.9} payloads (bound 8 MiB)`)
})
