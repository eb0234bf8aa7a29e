import type { Logger } from 'pino'
import type { FiringCheck } from '../alerts/prometheus.ts'
import { toNodeAlert, type NodeAlert } from '../alerts/node-alert.ts'
import type { WebhookAlert } from '../alerts/webhook.ts'
import type { Cluster } from '../cluster.ts'
import type { Metrics } from '../metrics.ts'
import { measureScopes, recoverBreakers, updateBreakers, type BreakerState } from '../policy/circuit-breaker.ts'
import type { PolicyConfig } from '../policy/config.ts'
import { drainsInFlight } from '../policy/semaphore.ts'
import type { Provider } from '../providers/provider.ts'
import { applyNodeAlerts, decide, groupByNode, triage, type AlertOutcome, type Decision } from './intake.ts'
import { phases, type NodeRecord } from './record.ts'
import { planReconcile, type Step } from './schedule.ts'
import { overlay, type NodeView, type Snapshot } from './snapshot.ts'
import { createNodeStore } from './store.ts'
import { cancelPending, cooldownOver, deferPending, endCooldown, operatorUncordoned, startRemediation, uncordonedByOperator, type Change } from './transitions.ts'
import { remediateNode, type WorkerDeps } from './worker.ts'

export type EngineConfig = {
  policy: PolicyConfig
  annotationPrefix: string
  dryRun: boolean
  reconcileIntervalMs: number
  drain: { concurrency: number, backoff: { initialMs: number, maxMs: number }, forceDeleteOnTimeout: boolean }
}

export type EngineDeps = {
  cluster: Cluster
  provider: Provider
  config: EngineConfig
  metrics: Metrics
  log: Logger
  now?: () => number
  /** When Prometheus is configured: is the alert still firing there? Throws when it cannot tell. */
  prometheusCheck?: FiringCheck
  /** False when a leader election decides (setLeader); a lone replica leads from the start. */
  startAsLeader?: boolean
}

export type NodeStatus = {
  name: string
  pool: string
  zone: string
  unschedulable: boolean
  phase: NodeRecord['phase']
  since: string | null
  reason: string
  alert: NonNullable<NodeRecord['alert']> | null
  deferred: NonNullable<NodeRecord['deferred']> | null
  cooldownUntil: string | null
  drainDeadline: string | null
  outcome: string | null
  transitions: NodeRecord['history']
}

export type Engine = ReturnType<typeof createEngine>

/**
 * The imperative shell around the pure core: reads the cluster into a snapshot, asks the core,
 * persists each change on the Node before acting on it, and runs one worker per node that is
 * being remediated. Level-triggered: every pass starts again from the persisted states.
 */
export function createEngine (deps: EngineDeps) {
  const { cluster, provider, config, metrics, log } = deps
  const now = deps.now ?? Date.now
  const policy = config.policy
  const store = createNodeStore({ cluster, annotationPrefix: config.annotationPrefix, policy, metrics, log })
  const { snapshot, persist } = store
  const workerDeps: WorkerDeps = {
    cluster, store, provider, policy, metrics, log, now,
    drain: { ...config.drain, excludeAnnotation: `${config.annotationPrefix}/drain-exclude` }
  }
  const workers = new Map<string, { controller: AbortController, done: Promise<void> }>()
  let breakers: Map<string, BreakerState> = new Map()
  let leader = deps.startAsLeader ?? true
  let recovered = false
  let running: Promise<void> | undefined
  let again = false
  let ticker: NodeJS.Timeout | undefined
  // Intake and reconcile passes take turns: a pass must see a whole notification, or a storm
  // arriving in one notification could start a drain before the breaker has counted it.
  let turn: Promise<unknown> = Promise.resolve()
  const inTurn = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = turn.then(fn)
    turn = run.catch(() => {})
    return run
  }
  let unsubscribe: (() => void) | undefined
  metrics.dryRun.set(config.dryRun ? 1 : 0)
  metrics.leader.set(leader ? 1 : 0)

  async function intake (webhookAlerts: readonly WebhookAlert[], source: NodeAlert['source'], dryRun: boolean): Promise<Decision[]> {
    const at = now()
    for (const alert of webhookAlerts) metrics.alertsReceived.inc({ source, status: alert.status })
    // Decided on the cached fleet first: a dry run, or a notification that changes nothing (most
    // are Alertmanager's repeats), is answered without waiting for a turn or touching the API.
    const preview = triage(webhookAlerts, await snapshot(), at, policy, breakers, source)
    const decisions = dryRun || config.dryRun || preview.changes.size === 0
      ? preview.decisions
      : await inTurn(() => persistNotification(webhookAlerts.map(alert => toNodeAlert(alert, policy, source)), at))
    for (const decision of decisions) {
      metrics.decisions.inc({ action: decision.action })
      if (decision.rule !== undefined && decision.action !== 'remediate') metrics.blocked.inc({ rule: decision.rule })
      if (log.isLevelEnabled('info')) log.info({ ...decision, source, dryRun: dryRun || config.dryRun }, `alert ${decision.alertname} for ${decision.node ?? '(no node)'}: ${decision.action}`)
    }
    return decisions
  }

  /** Persists what a notification changes, node by node, then decides on the result. */
  async function persistNotification (alerts: readonly NodeAlert[], at: number): Promise<Decision[]> {
    const current = await snapshot()
    const outcomes: AlertOutcome[] = new Array(alerts.length)
    const changed = new Map<string, NodeView>()
    for (const [name, indexes] of groupByNode(alerts)) {
      const own = indexes.map(i => alerts[i]!)
      const keep = (result: { outcomes: AlertOutcome[] }) => indexes.forEach((alertIndex, j) => { outcomes[alertIndex] = result.outcomes[j]! })
      const known = name === undefined ? undefined : current.get(name)
      const preview = applyNodeAlerts(known, own, at, policy)
      keep(preview)
      // Nothing to write (a repeat notification, an ignored alert): no read, no write.
      if (preview.change === undefined || known === undefined) continue
      const applied = await persist(known.name, view => {
        const result = applyNodeAlerts(view, own, at, policy)
        keep(result)
        return result.change
      })
      if (applied === undefined) keep(applyNodeAlerts(undefined, own, at, policy))
      else changed.set(known.name, applied)
    }
    if (changed.size > 0) void kick()
    return decide(alerts, outcomes, overlay(current, changed), at, policy, breakers)
  }

  function updateGauges (current: Snapshot) {
    const counts = new Map<string, number>(phases.map(phase => [phase, 0]))
    for (const view of current.values()) if (view.record !== undefined) counts.set(view.record.phase, counts.get(view.record.phase)! + 1)
    for (const [phase, count] of counts) metrics.nodesInPhase.set({ phase }, count)
    metrics.drainsInFlight.set(drainsInFlight(current))
    metrics.breakerOpen.reset()
    for (const key of measureScopes(current).keys()) metrics.breakerOpen.set({ scope: key }, breakers.has(key) ? 1 : 0)
  }

  /**
   * Before a drain starts: the alert must still be firing, and Prometheus (when configured) must
   * agree. Returns undefined to go ahead, or what to record on the pending node instead.
   */
  async function recheck (view: NodeView): Promise<((record: NodeRecord) => Change | undefined) | undefined> {
    const alert = view.record!.alert!
    if (deps.prometheusCheck === undefined || alert.source === 'fault') return undefined
    try {
      if (await deps.prometheusCheck(alert.alertname, view.name)) return undefined
      return record => cancelPending(record, now(), `recheck: Prometheus no longer reports ${alert.alertname} firing for ${view.name}`)
    } catch (err) {
      return record => deferPending(record, { rule: 'recheck', reason: `cannot confirm the alert with Prometheus (${(err as Error).message}); not draining` })
    }
  }

  const samePending = (view: NodeView, expected: NodeView) =>
    view.record?.phase === 'pending' && view.record.since === expected.record?.since

  async function execute (step: Step, current: Snapshot) {
    const expected = current.get(step.node)!
    switch (step.kind) {
      case 'start': {
        const hold = await recheck(expected)
        if (hold !== undefined) {
          await persist(step.node, view => samePending(view, expected) ? hold(view.record!) : undefined)
          return
        }
        const started = await persist(step.node, view => samePending(view, expected) ? startRemediation(view, now()) : undefined)
        if (started?.record?.phase === 'cordoned') spawn(step.node)
        return
      }
      case 'defer':
        await persist(step.node, view => samePending(view, expected) ? deferPending(view.record!, step.block) : undefined)
        return
      case 'resume':
        spawn(step.node)
        return
      case 'operator-uncordoned': {
        const worker = workers.get(step.node)
        worker?.controller.abort(new Error('node made schedulable by someone else'))
        await worker?.done
        await persist(step.node, view => uncordonedByOperator(view) ? operatorUncordoned(view.record!, now(), policy) : undefined)
        return
      }
      case 'end-cooldown':
        await persist(step.node, view => cooldownOver(view, now()) ? endCooldown(view.record!, now()) : undefined)
    }
  }

  async function reconcileOnce () {
    if (!leader || config.dryRun) return
    const at = now()
    const current = await snapshot()
    if (!recovered) {
      breakers = recoverBreakers(current, at)
      recovered = true
      log.info({ tracked: [...current.values()].filter(v => v.record !== undefined).length, openBreakers: [...breakers.keys()] }, 'recovered state from the cluster')
    }
    breakers = updateBreakers(breakers, current, at, policy)
    updateGauges(current)
    for (const step of planReconcile(current, at, policy, breakers)) {
      try {
        await execute(step, current)
      } catch (err) {
        log.error({ err, step }, 'reconcile step failed; the next pass retries it')
      }
    }
  }

  /** Runs a reconcile pass now, or right after the one under way. */
  function kick (): Promise<void> {
    if (running !== undefined) {
      again = true
      return running
    }
    running = (async () => {
      do {
        again = false
        try {
          await inTurn(reconcileOnce)
        } catch (err) {
          log.warn({ err }, 'reconcile pass failed; retrying at the next interval')
        }
      } while (again)
    })().finally(() => { running = undefined })
    return running
  }

  function spawn (name: string) {
    if (workers.has(name) || !leader) return
    const controller = new AbortController()
    const done = remediateNode(name, controller.signal, workerDeps).then(
      () => { workers.delete(name); void kick() },
      err => {
        workers.delete(name)
        if (!controller.signal.aborted) log.error({ err, node: name }, 'remediation worker stopped; the next pass resumes it')
      })
    workers.set(name, { controller, done })
  }

  function statusOf (view: NodeView): NodeStatus {
    const record = view.record
    return {
      name: view.name,
      pool: view.pool,
      zone: view.zone,
      unschedulable: view.unschedulable,
      phase: record?.phase ?? 'healthy',
      since: record?.since ?? null,
      reason: record?.reason ?? view.recordError ?? 'no remediation yet',
      alert: record?.alert ?? null,
      deferred: record?.deferred ?? null,
      cooldownUntil: record?.cooldownUntil ?? null,
      drainDeadline: record?.drainDeadline ?? null,
      outcome: record?.outcome ?? null,
      transitions: record?.history ?? []
    }
  }

  return {
    intake,
    /** One reconcile pass (or joins the one under way); resolves when it is done. */
    reconcile: kick,
    async nodes (): Promise<NodeStatus[]> {
      const current = await snapshot()
      return [...current.values()].filter(view => view.record !== undefined || view.recordError !== undefined).map(statusOf)
    },
    async node (name: string): Promise<NodeStatus | undefined> {
      const current = await store.view(name)
      return current === undefined ? undefined : statusOf(current.view)
    },
    /** True once the persisted state has been read (and, in dry-run, once the cluster answered). */
    get recovered () { return recovered || config.dryRun || !leader },
    /** Resolves when every node worker has settled; for tests and shutdown. */
    async idle () {
      while (running !== undefined || workers.size > 0) await Promise.all([running, ...[...workers.values()].map(w => w.done)])
    },
    /** Leadership changes: a replica that loses it stops acting at once. */
    async setLeader (value: boolean) {
      leader = value
      metrics.leader.set(value ? 1 : 0)
      if (value) {
        recovered = false
        void kick()
        return
      }
      for (const worker of workers.values()) worker.controller.abort(new Error('leadership lost'))
      await Promise.all([...workers.values()].map(w => w.done))
    },
    start () {
      unsubscribe = cluster.onNodeChange(() => { void kick() })
      ticker = setInterval(() => { void kick() }, config.reconcileIntervalMs)
      ticker.unref()
      void kick()
    },
    async stop () {
      unsubscribe?.()
      clearInterval(ticker)
      leader = false
      for (const worker of workers.values()) worker.controller.abort(new Error('shutting down'))
      await Promise.all([running, ...[...workers.values()].map(w => w.done)])
    }
  }
}
