import type { V1Node } from '@kubernetes/client-node'
import type { Logger } from 'pino'
import type { AlertmanagerSource, AlertmanagerView } from '../alerts/alertmanager.ts'
import type { FiringCheck } from '../alerts/prometheus.ts'
import { toNodeAlert, type NodeAlert } from '../alerts/node-alert.ts'
import type { WebhookAlert } from '../alerts/webhook.ts'
import { ClusterError, type Cluster, type ControllerState } from '../cluster.ts'
import { forEachLimited } from '../concurrency.ts'
import type { FleetReading, Metrics } from '../metrics.ts'
import { allowedUnavailable, holdsSlot, outOfServiceCause, scopeKeys, type ScopeUsage } from '../policy/budget.ts'
import { breakerOpen, recordProvenFix, updateBreakerMemory } from '../policy/circuit-breaker.ts'
import { persisted, type Block, type PolicyConfig } from '../policy/config.ts'
import { drivingAlert, liveAlerts } from '../policy/expiry.ts'
import { expiredPauses, pauseActive, pauseBlock, windowBlock } from '../policy/pause.ts'
import type { DrainSwitches } from '../policy/pods.ts'
import { describeWindows, isOpen, nextOpening, type Windows } from '../policy/window.ts'
import type { Provider } from '../providers/provider.ts'
import { iso, parseTime } from '../time.ts'
import { createFleet } from './fleet.ts'
import { pauseKey, type DepartedEntry, type FleetState, type Pause } from './fleet-state.ts'
import { decide, groupByNode, applyNodeAlerts, reconcileWithAlertmanager, triage, type AlertOutcome, type Decision } from './intake.ts'
import { workingPhases, type NodeRecord, type Phase } from './record.ts'
import { dueAt, nextToStart, planNode, progressDeparted, type Gates, type Start, type Step } from './schedule.ts'
import type { NodeView } from './snapshot.ts'
import { createFleetStateStore, createNodeStore, FencedError, sameView, type EventBatch } from './store.ts'
import {
  cancelPending, deferPending, endCooldown, failRemediation, fixProven, notFixed, operatorUncordoned,
  interruptDwell, resumeDwell, returnToService, startRemediation, takenOverWhileVerifying, uncordonedByOperator, type Change
} from './transitions.ts'
import { startChecks, type StartCheckDeps } from './start-checks.ts'
import { remediateNode, type WorkerDeps } from './worker.ts'

export type EngineConfig = {
  policy: PolicyConfig
  annotationPrefix: string
  /** The controller's own Lease: fleet-wide Events are about it. */
  lease: { namespace: string, name: string }
  /** Fallback: the longest time between two passes when no change or timer wakes the engine. */
  reconcileIntervalMs: number
  /** Safety net: how often every node is re-read from the cache and re-examined. */
  resyncIntervalMs: number
  /** Node writes in flight at once during a storm. */
  writeConcurrency: number
  /** Deadline of one provider call, retries included: how long `remediating` may last. */
  providerTimeoutMs: number
  /** How often the leader reads Alertmanager's alerts (when ALERTMANAGER_URL is set). */
  alertmanagerSyncMs: number
  /** REMEDIATION_WINDOWS: outside every window nothing new starts. Empty: always. */
  windows: Windows
  drain: { concurrency: number, backoff: { initialMs: number, maxMs: number }, forceDeleteOnTimeout: boolean, switches: DrainSwitches }
  /** Before a cordon: do the evictable pods fit elsewhere? */
  capacityCheck: boolean
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
  /** When Alertmanager is configured: what it holds now (active or silenced). Throws when it cannot tell. */
  alertmanager?: AlertmanagerSource
  /** False when a leader election decides (setLeader); a lone replica leads from the start. */
  startAsLeader?: boolean
  /** The elector's word that the lease is certainly still ours; asked before every write. */
  leaseValid?: () => boolean
  /** Blocks the operator's controls add (pause, maintenance windows). */
  gates?: Gates
}

export type NodeStatus = {
  name: string
  uid: string
  pool: string
  zone: string
  unschedulable: boolean
  phase: NodeRecord['phase']
  since: string | null
  reason: string
  /** The alert that drives (or last drove) the node. */
  alert: NodeRecord['alerts'][number] | null
  alerts: NodeRecord['alerts']
  deferred: (Omit<Block, 'until'>) | null
  outOfService: { cause: string, by: 'us' | 'others' } | null
  veto: NonNullable<NodeView['veto']> | null
  cooldownUntil: string | null
  drainDeadline: string | null
  outcome: string | null
  transitions: NodeRecord['history']
}

export type BudgetStatus = {
  maxConcurrentDrains: number
  ours: number
  pools: Array<{
    pool: string
    size: number
    budget: number
    outOfService: { ours: number, others: number, causes: Record<string, number> }
    breaker: { open: boolean, since?: string, closedAt?: string, proven?: number }
    zones: Array<{ zone: string, size: number, budget: number, outOfService: { ours: number, others: number, causes: Record<string, number> } }>
  }>
  departed: DepartedEntry[]
}

export type Engine = ReturnType<typeof createEngine>

/** What an operator's release of a departed node did. */
export type ReleaseOutcome = { released: true } | { released: false, refused: 'not-found' | 'waiting', reason: string }

/**
 * The imperative shell around the pure core, in controller-runtime's shape: the watch cache feeds
 * a fleet index (the only reader), a node change that matters to a rule queues that node, a pass
 * reconciles the queued and the due nodes one at a time, then asks the fleet-wide schedule which
 * pending nodes may start. Level-triggered: every decision starts again from the persisted states;
 * every change is persisted on the Node before it is acted on; every write is fenced by the lease.
 */
export function createEngine (deps: EngineDeps) {
  const { cluster, provider, config, metrics, log } = deps
  const now = deps.now ?? Date.now
  const policy = config.policy
  // The last verdict of the slow checks before a start (pod checks, the Prometheus recheck) per
  // node that held it: kept for the schedule (a held node takes no slot), for the API (its numbers
  // are never persisted), and checked again after the TTL.
  const startVerdicts = new Map<string, { block: Block, at: number }>()
  const startVerdictTtlMs = 15_000
  // A follower never ran the checks itself: it trusts what the leader persisted, so both answer alike.
  const persistedPodBlock = (name: string): Block | undefined => {
    const deferred = fleet.get(name)?.record?.deferred
    return deferred !== undefined && (deferred.rule === 'protected-pods' || deferred.rule === 'capacity') ? deferred : undefined
  }
  const gates: Gates = {
    paused: pool => pauseBlock(fleet.state.pauses, pool, now()),
    window: () => windowBlock(config.windows, now()),
    ...deps.gates,
    startVerdicts: name => startVerdicts.get(name)?.block ?? (leading() ? undefined : persistedPodBlock(name))
  }
  const store = createNodeStore({ cluster, annotationPrefix: config.annotationPrefix, policy, metrics, log })
  const fleetState = createFleetStateStore({ cluster, annotationPrefix: config.annotationPrefix, log })
  const fleet = createFleet(policy)
  const objects = new Map<string, V1Node>()
  const queue = new Set<string>()
  const timers = new Map<string, NodeJS.Timeout>()
  const workers = new Map<string, { controller: AbortController, done: Promise<void> }>()
  let fleetTimer: NodeJS.Timeout | undefined
  let scheduleDirty = true
  let loaded = false
  let observing = false
  let loading: Promise<void> | undefined
  let leader = deps.startAsLeader ?? true
  let recovered = false
  let stopped = false
  let intakesInFlight = 0
  let running: Promise<void> | undefined
  let again = false
  let ticker: NodeJS.Timeout | undefined
  let resyncTicker: NodeJS.Timeout | undefined
  let alertmanagerTicker: NodeJS.Timeout | undefined
  let unsubscribe: (() => void) | undefined
  metrics.leader.set(leader ? 1 : 0)

  /** May this replica act right now? Asked right before every write, eviction and provider call. */
  const leading = () => leader && !stopped && (deps.leaseValid?.() ?? true)

  const startCheckDeps: StartCheckDeps = { cluster, policy, switches: config.drain.switches, capacityCheck: config.capacityCheck }
  const workerDeps: WorkerDeps = {
    cluster, store, provider, policy, metrics, log, now,
    fence: leading,
    observed: (view, node) => observe(node, false, view),
    heldBack: async view => {
      adopt(await fleetState.refresh())
      return pauseBlock(fleet.state.pauses, view.pool, now())?.reason
    },
    drain: config.drain
  }

  function enqueue (name: string) {
    queue.add(name)
    scheduleDirty = true
  }

  /**
   * A node as the cache (or our own write) shows it. A change no rule reads (a heartbeat, an image
   * list, an unrelated annotation) is dropped here: it queues nothing and costs one comparison.
   */
  function observe (node: V1Node, deleted: boolean, known?: NodeView) {
    const name = node.metadata!.name!
    if (deleted) {
      const gone = fleet.remove(name)
      objects.delete(name)
      clearTimeout(timers.get(name))
      timers.delete(name)
      if (gone !== undefined) {
        scheduleDirty = true
        // Gone mid-work (being drained, rebooted, replaced), the pool is a node short until the cloud
        // makes it whole: the slot stays held. A failed node an operator deleted, or a verified one
        // an autoscaler consolidated, was the operator's or back in service: its slot is free.
        if (gone.record !== undefined && workingPhases.has(gone.record.phase)) void recordDeparture(gone)
        void kick()
      }
      return
    }
    const previous = objects.get(name)
    if (previous !== undefined && Number(previous.metadata?.resourceVersion) > Number(node.metadata?.resourceVersion)) return
    objects.set(name, node)
    const view = known ?? store.toView(node)
    const old = fleet.get(name)
    if (old !== undefined && sameViewOf(old, view)) return
    fleet.upsert(view)
    enqueue(name)
    void kick()
  }
  const sameViewOf = (a: NodeView, b: NodeView) => a === b || sameView(a, b)

  /** The fleet from the cache's full list: at start, on leadership, and as a periodic safety net. */
  async function load (): Promise<void> {
    // From the first load on, every change is taken, resyncs included: a cordon seen during one
    // must count at once (the resourceVersion check keeps an older list item from undoing it).
    observing = true
    const nodes = await cluster.listNodes()
    const present = new Set<string>()
    for (const node of nodes) {
      present.add(node.metadata!.name!)
      observe(node, false)
    }
    for (const view of [...fleet.values()]) if (!present.has(view.name)) observe(objects.get(view.name) ?? { metadata: { name: view.name } }, true)
    adopt(await fleetState.refresh())
    if (unsavedDepartures.size > 0) await saveDepartures().catch(err => log.warn({ err }, 'could not persist departed nodes yet'))
    for (const view of fleet.values()) if (view.record !== undefined) queue.add(view.name)
    scheduleDirty = true
    loaded = true
  }
  const ensureLoaded = async () => {
    if (loaded) return
    loading ??= load().finally(() => { loading = undefined })
    await loading
  }

  // Departures counted in memory but not yet persisted (the write failed): merged into every read.
  const unsavedDepartures = new Map<string, DepartedEntry>()
  function withDepartures (state: FleetState): FleetState {
    let departed: Map<string, DepartedEntry> | undefined
    for (const [name, entry] of unsavedDepartures) {
      if (state.departed.get(name)?.uid === entry.uid) continue
      departed ??= new Map(state.departed)
      departed.set(name, entry)
    }
    return departed === undefined ? state : { ...state, departed }
  }
  /** The fleet state as stored, plus what is counted but not yet saved. */
  const adopt = (state: FleetState) => fleet.setState(withDepartures(state))
  async function saveDepartures () {
    const saved = [...unsavedDepartures.keys()]
    adopt(await fleetState.update(withDepartures))
    for (const name of saved) unsavedDepartures.delete(name)
  }

  /**
   * A node we held left the cluster: its slot and its place in the pool are kept until the pool is
   * whole. Counted at once in memory (a pass must not hand the slot out meanwhile), then persisted.
   */
  async function recordDeparture (gone: NodeView) {
    const at = now()
    const present = [...fleet.values()].filter(v => v.pool === gone.pool && !v.deleting).length
    const entry: DepartedEntry = {
      node: gone.name,
      uid: gone.uid,
      pool: gone.pool,
      zone: gone.zone,
      ...(gone.record?.remediationId === undefined ? {} : { remediationId: gone.record.remediationId }),
      goneAt: iso(at),
      expected: present + 1,
      deadline: iso(at + policy.replaceTimeoutMs)
    }
    unsavedDepartures.set(gone.name, entry)
    adopt(fleet.state)
    try {
      await saveDepartures()
      log.info({ node: gone.name, pool: gone.pool, expected: entry.expected }, `node ${gone.name} left the cluster while held; its slot is kept until pool ${gone.pool} is back at ${entry.expected} nodes`)
      await cluster.recordEvent(controllerRef(), { type: 'Normal', reason: 'RemediationDeparted', action: 'depart', note: `node ${gone.name} (pool ${gone.pool}) left the cluster while held; its slot is kept until the pool is back at ${entry.expected} nodes in service for VERIFY_DWELL` }).catch(err => log.warn({ err }, 'could not record event'))
    } catch (err) {
      log.error({ err, node: gone.name }, 'could not persist a departed node; it is counted in memory and retried at the next resync')
    }
    scheduleDirty = true
    void kick()
  }
  const controllerRef = () => ({ kind: 'Lease' as const, ...config.lease })

  /** Persists one node's change (fenced for leader steps) and feeds the result back into the fleet. */
  async function persist (name: string, decideChange: (view: NodeView) => Change | undefined, fenced = true, batch?: EventBatch): Promise<NodeView | undefined> {
    const result = await store.persist(name, objects.get(name), decideChange, fenced ? leading : undefined, batch)
    if (result === undefined) return undefined
    observe(result.node, false, result.view)
    return result.view
  }

  // ---- intake (any replica) -----------------------------------------------------------------

  /** The fleet-wide rules' answer for pending nodes, computed once per call; pod checks' last answer for ones that would start. */
  function blocksNow (at: number): (name: string) => Block | undefined {
    let schedule: ReturnType<typeof nextToStart> | undefined
    return name => {
      schedule ??= nextToStart(fleet, at, policy, gates)
      return schedule.blocked.get(name)
    }
  }

  /** For the answer: the nodes a notification would start now get their pod checks run first. */
  async function checkWouldStart (alerts: readonly NodeAlert[], outcomes: readonly AlertOutcome[], at: number) {
    const pending = new Set(alerts.filter((_, i) => outcomes[i]!.kind === 'pending').map(a => a.node!))
    if (pending.size === 0) return
    const schedule = nextToStart(fleet, at, policy, gates)
    await forEachLimited(schedule.start.filter(s => pending.has(s.node)), 4, async s => {
      const view = fleet.get(s.node)
      if (view !== undefined) await checkPods(view, s.action).catch(err => log.warn({ err, node: s.node }, 'pod checks failed; the start re-checks'))
    })
  }

  /** Applies `changes` to the fleet, runs `fn`, and puts the fleet back: what a dry-run request needs. */
  function withChanges<T> (changes: ReadonlyMap<string, Change>, fn: () => T): T {
    const originals: NodeView[] = []
    for (const [name, change] of changes) {
      const view = fleet.get(name)
      if (view === undefined) continue
      originals.push(view)
      fleet.upsert({ ...view, record: change.record, unschedulable: change.unschedulable ?? view.unschedulable })
    }
    try {
      return fn()
    } finally {
      for (const view of originals) fleet.upsert(view)
    }
  }

  type Notification = { truncatedAlerts?: number, groupKey?: string }

  async function intake (webhookAlerts: readonly WebhookAlert[], source: NodeAlert['source'], dryRun: boolean, notification: Notification = {}): Promise<Decision[]> {
    if (stopped) throw new ClusterError('unavailable', 'shutting down')
    await ensureLoaded()
    const at = now()
    for (const alert of webhookAlerts) metrics.alertsReceived.inc({ source, status: alert.status })
    const alerts = webhookAlerts.map(alert => toNodeAlert(alert, policy, source))
    const preview = triage(alerts, fleet, at, policy)
    let decisions: Decision[]
    const doubtChanges = (notification.truncatedAlerts ?? 0) > 0 || fleet.state.doubts.has(notification.groupKey ?? '')
    if (dryRun) {
      decisions = withChanges(preview.changes, () => decide(alerts, preview.outcomes, blocksNow(at)))
    } else if (preview.changes.size === 0 && !doubtChanges) {
      // Most notifications are Alertmanager's repeats: nothing to write, nothing to reconcile.
      decisions = decide(alerts, preview.outcomes, blocksNow(at))
    } else {
      intakesInFlight++
      try {
        const outcomes = await persistNotification(alerts, preview, at)
        await noteTruncation(alerts, notification, at)
        await checkWouldStart(alerts, outcomes, at)
        decisions = decide(alerts, outcomes, blocksNow(at))
      } finally {
        intakesInFlight--
      }
      scheduleDirty = true
      void kick()
    }
    for (const decision of decisions) {
      metrics.decisions.inc({ action: decision.action })
      if (decision.rule !== undefined && decision.action !== 'remediate') metrics.blocked.inc({ rule: decision.rule })
      if (log.isLevelEnabled('info')) log.info({ ...decision, source, dryRun }, `alert ${decision.alertname} for ${decision.node ?? '(no node)'}: ${decision.action}`)
    }
    return decisions
  }

  /** Persists what a notification changes, node by node and several at a time; the outcomes of the last decision per node. */
  async function persistNotification (alerts: readonly NodeAlert[], preview: { outcomes: AlertOutcome[], changes: ReadonlyMap<string, Change> }, at: number): Promise<AlertOutcome[]> {
    const outcomes = [...preview.outcomes]
    const groups = groupByNode(alerts)
    const batch: EventBatch = []
    try {
      await forEachLimited(preview.changes.keys(), config.writeConcurrency, async name => {
        const indexes = groups.get(name)!
        const own = indexes.map(i => alerts[i]!)
        const keep = (result: { outcomes: AlertOutcome[] }) => indexes.forEach((alertIndex, j) => { outcomes[alertIndex] = result.outcomes[j]! })
        // Shutting down: what is written stays written; the rest Alertmanager redelivers (a 503).
        if (stopped) throw new ClusterError('unavailable', 'shutting down')
        const applied = await persist(name, view => {
          const result = applyNodeAlerts(view, own, at, policy)
          keep(result)
          return result.change
        }, false, batch)
        if (applied === undefined) keep(applyNodeAlerts(undefined, own, at, policy))
      })
    } finally {
      await store.recordBatch(batch, controllerRef())
    }
    return outcomes
  }

  /**
   * A truncated notification (Alertmanager's max_alerts) hides alerts: its pools start nothing
   * until the picture is complete again — a later untruncated notification of the same group.
   */
  async function noteTruncation (alerts: readonly NodeAlert[], notification: Notification, at: number) {
    const groupKey = notification.groupKey ?? ''
    const hidden = notification.truncatedAlerts ?? 0
    if (hidden === 0 && !fleet.state.doubts.has(groupKey)) return
    const pools = [...new Set(alerts.map(alert => alert.node === undefined ? undefined : fleet.get(alert.node)?.pool).filter(pool => pool !== undefined))]
    const state = await fleetState.update(state => {
      const doubts = new Map(state.doubts)
      const known = state.doubts.get(groupKey)
      if (hidden === 0) doubts.delete(groupKey)
      else if (known?.hidden !== hidden) doubts.set(groupKey, { groupKey, pools, since: iso(at), hidden, lastSeen: iso(at) })
      // Still truncated: seen again (coarsely, like an alert's lastSeen), so the doubt does not expire.
      else if (at - parseTime(known.lastSeen ?? known.since) >= policy.alertTtlMs / 4) doubts.set(groupKey, { ...known, lastSeen: iso(at) })
      else return state
      return { ...state, doubts }
    })
    adopt(state)
  }

  // ---- reconcile (leader) -------------------------------------------------------------------

  /**
   * Before a drain starts: the alert must still be firing, and Prometheus (when configured) must
   * agree. Returns undefined to go ahead, or what to record on the pending node instead.
   */
  async function recheck (view: NodeView): Promise<((record: NodeRecord) => Change | undefined) | undefined> {
    const alert = drivingAlert(liveAlerts(view.record, now(), policy))
    if (alert === undefined) return record => cancelPending(record, now(), 'no alert of the node counts any more')
    if (deps.prometheusCheck === undefined || alert.source === 'fault') return undefined
    try {
      if (await deps.prometheusCheck(alert.alertname, view.name)) return undefined
      return record => cancelPending(record, now(), `recheck: Prometheus no longer reports ${alert.alertname} firing for ${view.name}`)
    } catch (err) {
      metrics.sourceUp.set({ source: 'prometheus' }, 0)
      const block: Block = { rule: 'recheck', reason: `cannot confirm the alert with Prometheus (${(err as Error).message.split('\n')[0]}); not draining` }
      // Asked again once the verdict's TTL has passed, not on every pass: a Prometheus that is
      // down is not hammered, and the node waits like one held by a pod check (no slot taken).
      startVerdicts.set(view.name, { block, at: now() })
      return record => deferPending(record, block)
    }
  }

  const samePending = (view: NodeView, expected: NodeView) =>
    view.record?.phase === 'pending' && view.record.since === expected.record?.since

  /**
   * The checks that read the cluster's pods (protected pods, room for them), for a node the rules
   * would start now. Their last answer per node is kept for the API: its numbers are never persisted.
   */
  async function checkPods (view: NodeView, action: Start['action']): Promise<Block | undefined> {
    // Pods that cannot be classified (an owner or volume lookup failed) are not known to be safe:
    // the node is held like one with protected pods, re-checked after the TTL, and the other
    // pending nodes still get their turn.
    const block = await startChecks(startCheckDeps, view, action, fleet).catch((err: Error): Block => {
      log.warn({ err, node: view.name }, 'could not classify the pods of a node about to start; holding it')
      return { rule: 'protected-pods', reason: `cannot tell whether the drain would lose data: ${err.message}; held, checked again in ${startVerdictTtlMs / 1000} s` }
    })
    if (block === undefined) startVerdicts.delete(view.name)
    else startVerdicts.set(view.name, { block, at: now() })
    return block
  }

  /** Start verdicts older than their TTL, or of nodes no longer pending, are dropped: the node gets its turn again. Returns when the next one expires. */
  function expireStartVerdicts (at: number): number | undefined {
    let next: number | undefined
    for (const [name, check] of startVerdicts) {
      if (at - check.at >= startVerdictTtlMs || fleet.get(name)?.record?.phase !== 'pending') startVerdicts.delete(name)
      else next = Math.min(next ?? Infinity, check.at + startVerdictTtlMs)
    }
    return next
  }

  /**
   * Lays Alertmanager's view over the nodes' records (all, or the given ones) and persists what
   * changed: silenced and vanished alerts stop counting, the planNode step then lets go of a
   * pending node.
   */
  async function applyAlertmanager (view: AlertmanagerView, only?: string) {
    const at = now()
    const nodes = only === undefined ? [...fleet.withAlerts()] : [fleet.get(only)].filter(v => v !== undefined)
    const changed = nodes.filter(v => v.record !== undefined && reconcileWithAlertmanager(v.record, view, at, policy) !== undefined).map(v => v.name)
    await forEachLimited(changed, config.writeConcurrency, async name => {
      await persist(name, v => {
        const record = v.record === undefined ? undefined : reconcileWithAlertmanager(v.record, view, now(), policy)
        return record === undefined ? undefined : { record }
      })
    })
  }

  async function syncAlertmanager () {
    if (deps.alertmanager === undefined || !leading()) return
    try {
      await ensureLoaded()
      await applyAlertmanager(await deps.alertmanager())
      metrics.sourceUp.set({ source: 'alertmanager' }, 1)
    } catch (err) {
      if (err instanceof FencedError) return
      metrics.sourceUp.set({ source: 'alertmanager' }, 0)
      log.warn({ err }, 'cannot read Alertmanager\'s alerts; no drain starts until it answers')
    }
    scheduleDirty = true
    void kick()
  }

  /** Right before a drain: does Alertmanager still hold the node's alert active? Undefined to go ahead, or what to record instead. */
  async function confirmWithAlertmanager (view: NodeView): Promise<((record: NodeRecord) => Change | undefined) | undefined> {
    if (deps.alertmanager === undefined) return undefined
    let current: AlertmanagerView
    try {
      current = await deps.alertmanager()
      metrics.sourceUp.set({ source: 'alertmanager' }, 1)
    } catch (err) {
      metrics.sourceUp.set({ source: 'alertmanager' }, 0)
      const block: Block = { rule: 'recheck', reason: `cannot confirm the alert with Alertmanager (${(err as Error).message.split('\n')[0]}); not draining` }
      // As for Prometheus: asked again after the verdict's TTL, not on every pass.
      startVerdicts.set(view.name, { block, at: now() })
      return record => deferPending(record, block)
    }
    await applyAlertmanager(current, view.name)
    const after = fleet.get(view.name)
    if (after?.record?.phase === 'pending' && liveAlerts(after.record, now(), policy).length > 0) return undefined
    return record => record.phase === 'pending' ? cancelPending(record, now(), 'Alertmanager no longer holds any of the node\'s alerts active (resolved, silenced or inhibited)') : undefined
  }

  async function start (next: Start) {
    const expected = fleet.get(next.node)
    if (expected?.record?.phase !== 'pending') return
    const hold = await confirmWithAlertmanager(expected) ?? await recheck(expected)
    if (hold !== undefined) {
      await persist(next.node, view => samePending(view, expected) ? hold(view.record!) : undefined)
      return
    }
    if (deps.prometheusCheck !== undefined) metrics.sourceUp.set({ source: 'prometheus' }, 1)
    const block = await checkPods(expected, next.action)
    if (block !== undefined) {
      await persist(next.node, view => samePending(view, expected) ? deferPending(view.record!, persisted(block)) : undefined)
      return
    }
    // The checks above took time (API calls): an operator may have cordoned a node, a pause may
    // have been set, another start may have gone out. The cordon goes out only if the node would
    // still start now, judged on the current fleet and a fresh fleet state.
    adopt(await fleetState.refresh())
    if (!nextToStart(fleet, now(), policy, gates).start.some(start => start.node === next.node)) {
      scheduleDirty = true
      return
    }
    const started = await persist(next.node, view => samePending(view, expected) ? startRemediation(view, next.action, now(), policy) : undefined)
    if (started?.record?.phase === 'cordoned') spawn(next.node)
  }

  async function execute (step: Step) {
    const name = step.node
    switch (step.kind) {
      case 'cancel':
        await persist(name, view => view.record?.phase === 'pending' && liveAlerts(view.record, now(), policy).length === 0 ? cancelPending(view.record, now(), step.reason) : undefined)
        return
      case 'resume': {
        // A drained node held by a pause stays at its safe point; a pause change re-queues it.
        const view = fleet.get(name)
        if (view?.record?.phase === 'remediating' && pauseBlock(fleet.state.pauses, view.pool, now()) !== undefined) return
        spawn(name)
        return
      }
      case 'operator-uncordoned': {
        const worker = workers.get(name)
        worker?.controller.abort(new Error('node made schedulable by someone else'))
        await worker?.done
        await persist(name, view => uncordonedByOperator(view) ? operatorUncordoned(view.record!, now(), policy) : undefined)
        return
      }
      case 'back-in-service':
        await persist(name, view => view.record?.phase === 'rebooting' && planNode(view, now(), policy)?.kind === 'back-in-service'
          ? returnToService(view.record, now(), `node Ready again on a new boot (${view.bootID})`)
          : undefined)
        return
      case 'timeout':
        await persist(name, view => planNode(view, now(), policy)?.kind === 'timeout' ? failRemediation(view.record!, now(), step.outcome, step.reason) : undefined)
        return
      case 'interrupt-dwell':
        await persist(name, view => planNode(view, now(), policy)?.kind === 'interrupt-dwell' ? interruptDwell(view.record!, now()) : undefined)
        return
      case 'resume-dwell':
        await persist(name, view => planNode(view, now(), policy)?.kind === 'resume-dwell' ? resumeDwell(view.record!, now()) : undefined)
        return
      case 'taken-over':
        await persist(name, view => {
          const plan = planNode(view, now(), policy)
          return plan?.kind === 'taken-over' ? takenOverWhileVerifying(view.record!, now(), plan.cause, policy) : undefined
        })
        return
      case 'proven': {
        const proven = await persist(name, view => planNode(view, now(), policy)?.kind === 'proven' ? fixProven(view.record!, now(), policy) : undefined)
        if (proven?.record?.phase === 'cooldown') await noteProvenFix(proven, now())
        return
      }
      case 'end-cooldown':
        await persist(name, view => planNode(view, now(), policy)?.kind === 'end-cooldown' ? endCooldown(view.record!, now()) : undefined)
        return
      case 'not-fixed':
        await persist(name, view => planNode(view, now(), policy)?.kind === 'not-fixed' ? notFixed(view.record!, now(), step.reason) : undefined)
    }
  }

  async function noteProvenFix (place: { pool: string, zone: string }, at: number) {
    const scopes = scopeKeys(place)
    const state = await fleetState.update(state => {
      const breakers = recordProvenFix(state.breakers, scopes, at)
      return breakers === state.breakers ? state : { ...state, breakers }
    }, leading)
    adopt(state)
  }

  /** Fleet-wide memory: departed nodes' progress and the breakers' slow start, written only on change. */
  async function reconcileFleetState (at: number): Promise<number | undefined> {
    const departed = progressDeparted(fleet, at, policy)
    const open = new Set<string>()
    for (const usage of fleet.scopes()) if (breakerOpen(usage, fleet.alertedWithin(usage.key, at, policy.breakerSettleMs), policy)) open.add(usage.key)
    let breakers = updateBreakerMemory(fleet.state.breakers, open, at, policy)
    for (const entry of departed.proven) breakers = recordProvenFix(breakers, scopeKeys(entry), at)
    for (const entry of departed.proven) unsavedDepartures.delete(entry.node)
    const expired = expiredPauses(fleet.state.pauses, at)
    if (expired.length > 0) {
      adopt(await fleetState.update(state => {
        const pauses = new Map(state.pauses)
        for (const key of expired) if (!pauseActive(pauses.get(key), now())) pauses.delete(key)
        return pauses.size === state.pauses.size ? state : { ...state, pauses }
      }, leading))
      for (const key of expired) await cluster.recordEvent(controllerRef(), { type: 'Normal', reason: 'RemediationPauseExpired', action: 'unpause', note: `the pause ${key === 'cluster' ? 'cluster-wide' : `of ${key}`} reached its expiry; remediation may start again` }).catch(err => log.warn({ err }, 'could not record event'))
      for (const view of fleet.withRecords()) queue.add(view.name)
      scheduleDirty = true
    }
    if (departed.departed !== fleet.state.departed || breakers !== fleet.state.breakers) {
      const state = await fleetState.update(state => ({ ...state, departed: departed.departed, breakers }), leading)
      adopt(state)
      for (const entry of departed.proven) log.info({ node: entry.node, pool: entry.pool }, `pool ${entry.pool} is whole again after ${entry.node} was replaced; its slot is free`)
      for (const entry of departed.failed) {
        log.warn({ node: entry.node, pool: entry.pool }, entry.failed)
        await cluster.recordEvent(controllerRef(), { type: 'Warning', reason: 'RemediationReplaceTimeout', action: 'fail', note: `${entry.node}: ${entry.failed}; its slot stays held until an operator removes the entry` }).catch(err => log.warn({ err }, 'could not record event'))
      }
    }
    const pauseEnds = [...fleet.state.pauses.values()].map(p => p.until === undefined ? undefined : parseTime(p.until)).filter(t => t !== undefined)
    return [departed.wakeAt, ...pauseEnds].reduce<number | undefined>((a, b) => b === undefined || (a !== undefined && a <= b) ? a : b, undefined)
  }

  // Consecutive failures per node: a step or worker that fails (the API is down) is retried after a
  // doubling pause, never at once, so an outage costs a request per node per pause, not a hot loop.
  const failures = new Map<string, number>()
  function retryLater (name: string) {
    const count = (failures.get(name) ?? 0) + 1
    failures.set(name, count)
    arm(name, now() + Math.min(60_000, 1000 * 2 ** (count - 1)))
  }

  // Node's timers fire after 1 ms when asked for more than 2^31-1 ms (24.8 days): a pause or a
  // veto a month ahead would spin. Waking once a day earlier is harmless: the due time is re-read.
  const delayUntil = (at: number) => Math.min(Math.max(0, at - now()), 86_400_000)

  function arm (name: string, at: number | undefined) {
    clearTimeout(timers.get(name))
    timers.delete(name)
    if (at === undefined) return
    const timer = setTimeout(() => { timers.delete(name); enqueue(name); void kick() }, delayUntil(at))
    timer.unref()
    timers.set(name, timer)
  }

  function armFleet (at: number | undefined) {
    clearTimeout(fleetTimer)
    fleetTimer = undefined
    if (at === undefined) return
    fleetTimer = setTimeout(() => { fleetTimer = undefined; scheduleDirty = true; void kick() }, delayUntil(at))
    fleetTimer.unref()
  }

  async function schedulePass (at: number): Promise<number | undefined> {
    const startVerdictWake = expireStartVerdicts(at)
    let schedule = nextToStart(fleet, at, policy, gates)
    if (schedule.start.length > 0) {
      // The destructive step is decided on the freshest fleet state (pauses, breakers, doubts).
      adopt(await fleetState.refresh())
      schedule = nextToStart(fleet, at, policy, gates)
    }
    const defers = [...schedule.blocked].filter(([name, block]) => deferPending(fleet.get(name)!.record!, persisted(block)) !== undefined)
    const batch: EventBatch = []
    try {
      await forEachLimited(defers, config.writeConcurrency, async ([name, block]) => {
        const expected = fleet.get(name)!
        await persist(name, view => samePending(view, expected) ? deferPending(view.record!, persisted(block)) : undefined, true, batch)
      })
    } finally {
      await store.recordBatch(batch, controllerRef())
    }
    for (const next of schedule.start) {
      if (!leading()) return undefined
      await start(next)
    }
    return [schedule.wakeAt, startVerdictWake, ...[...startVerdicts.values()].map(c => c.at + startVerdictTtlMs)].reduce<number | undefined>((a, b) => b === undefined || (a !== undefined && a <= b) ? a : b, undefined)
  }

  async function reconcileOnce () {
    if (!leading()) return
    await ensureLoaded()
    if (!recovered) {
      recovered = true
      for (const view of fleet.values()) if (view.record !== undefined) queue.add(view.name)
      log.info({ tracked: [...fleet.values()].filter(v => v.record !== undefined).length, departed: fleet.state.departed.size }, 'recovered state from the cluster')
    }
    const at = now()
    const names = [...queue]
    queue.clear()
    await forEachLimited(names, config.writeConcurrency, async name => {
      if (!leading()) return
      const view = fleet.get(name)
      if (view === undefined) return
      const step = planNode(view, at, policy)
      try {
        if (step !== undefined) await execute(step)
        failures.delete(name)
      } catch (err) {
        if (err instanceof FencedError) return
        log.error({ err, step }, 'reconcile step failed; retrying it after a pause')
        retryLater(name)
        return
      }
      const after = fleet.get(name)
      if (after !== undefined) arm(name, dueAt(after, now(), policy))
    })
    if (!leading()) return
    const departedWake = await reconcileFleetState(at)
    if (!scheduleDirty || intakesInFlight > 0) return
    scheduleDirty = false
    const scheduleWake = await schedulePass(at)
    armFleet([departedWake, scheduleWake].filter(w => w !== undefined).reduce<number | undefined>((a, b) => a === undefined || b! < a ? b : a, undefined))
  }

  /** Runs a reconcile pass now, or right after the one under way. */
  function kick (): Promise<void> {
    again = true
    running ??= passes()
    return running
  }
  async function passes () {
    // Yield once so that `running` is assigned before this can clear it; after that, `running` is
    // cleared in the same turn as the last check of `again`: a kick can never fall between them.
    await Promise.resolve()
    try {
      while (again && leading()) {
        again = false
        try {
          await reconcileOnce()
        } catch (err) {
          if (!(err instanceof FencedError)) log.warn({ err }, 'reconcile pass failed; retrying at the next interval')
        }
      }
    } finally {
      running = undefined
    }
  }

  function spawn (name: string) {
    if (workers.has(name) || !leading()) return
    const controller = new AbortController()
    const done = remediateNode(name, controller.signal, workerDeps).then(
      outcome => {
        workers.delete(name)
        // Nothing to do on a fresh read: our picture of the node is behind the cluster's. Look
        // again after a pause (the watch catches up meanwhile), never in a tight loop.
        if (outcome === 'idle') { retryLater(name); return }
        failures.delete(name)
        enqueue(name)
        void kick()
      },
      err => {
        workers.delete(name)
        if (controller.signal.aborted || err instanceof FencedError) return
        log.error({ err, node: name }, 'remediation worker stopped; resuming it after a pause')
        retryLater(name)
      })
    workers.set(name, { controller, done })
  }

  // ---- views for the API and metrics ---------------------------------------------------------

  function statusOf (view: NodeView, blocks: (name: string) => Block | undefined, at: number): NodeStatus {
    const record = view.record
    const live = liveAlerts(record, at, policy)
    const cause = outOfServiceCauseOf(view)
    const block = record?.phase === 'pending' ? blocks(view.name) : undefined
    const { until: _until, ...deferred }: Partial<Block> = block ?? record?.deferred ?? {}
    return {
      name: view.name,
      uid: view.uid,
      pool: view.pool,
      zone: view.zone,
      unschedulable: view.unschedulable,
      phase: record?.phase ?? 'healthy',
      since: record?.since ?? null,
      reason: record?.reason ?? view.recordError ?? 'no remediation yet',
      alert: drivingAlert(live) ?? record?.alerts.at(-1) ?? null,
      alerts: record?.alerts ?? [],
      deferred: record?.phase === 'pending' && deferred.rule !== undefined ? deferred as NodeStatus['deferred'] : null,
      outOfService: cause === undefined ? null : { cause, by: holdsSlot(view) ? 'us' : 'others' },
      veto: view.veto ?? null,
      cooldownUntil: record?.cooldownUntil ?? null,
      drainDeadline: record?.drainDeadline ?? null,
      outcome: record?.outcome ?? null,
      transitions: record?.history ?? []
    }
  }
  const outOfServiceCauseOf = (view: NodeView) => outOfServiceCause(view, policy)

  const usageJson = (usage: ScopeUsage) => ({ ours: usage.ours, others: usage.outOfService - usage.ours, causes: Object.fromEntries(usage.causes) })

  function budget (): BudgetStatus {
    const at = now()
    const pools = new Map<string, BudgetStatus['pools'][number]>()
    const scopes = [...fleet.scopes()].sort((a, b) => a.key < b.key ? -1 : 1)
    for (const usage of scopes) {
      if (usage.zone !== undefined) continue
      const memory = fleet.state.breakers.get(usage.key)
      const open = breakerOpen(usage, fleet.alertedWithin(usage.key, at, policy.breakerSettleMs), policy)
      pools.set(usage.pool, {
        pool: usage.pool,
        size: usage.size,
        budget: allowed(usage.size),
        outOfService: usageJson(usage),
        breaker: { open, ...(memory === undefined ? {} : { since: memory.openSince, ...(memory.closedAt === undefined ? {} : { closedAt: memory.closedAt, proven: memory.proven }) }) },
        zones: []
      })
    }
    for (const usage of scopes) {
      if (usage.zone === undefined) continue
      pools.get(usage.pool)?.zones.push({ zone: usage.zone, size: usage.size, budget: allowed(usage.size), outOfService: usageJson(usage) })
    }
    return { maxConcurrentDrains: policy.maxConcurrentDrains, ours: fleet.slotsHeld(), pools: [...pools.values()], departed: [...fleet.state.departed.values()] }
  }
  const allowed = (size: number) => allowedUnavailable(policy.poolMaxUnavailable, size)

  function reading (): FleetReading {
    const at = now()
    const byPhase = new Map<Phase, { count: number, oldestSince: number }>()
    for (const view of fleet.withRecords()) {
      const phase = view.record!.phase
      const since = parseTime(view.record!.since)
      const entry = byPhase.get(phase)
      if (entry === undefined) byPhase.set(phase, { count: 1, oldestSince: since })
      else { entry.count++; entry.oldestSince = Math.min(entry.oldestSince, since) }
    }
    const scopes = [...fleet.scopes()].map(usage => {
      const allowedHere = allowed(usage.size)
      return {
        scope: usage.key,
        pool: usage.pool,
        ...(usage.zone === undefined ? {} : { zone: usage.zone }),
        size: usage.size,
        budget: allowedHere,
        ours: usage.ours,
        others: usage.outOfService - usage.ours,
        breakerOpen: breakerOpen(usage, fleet.alertedWithin(usage.key, at, policy.breakerSettleMs), policy),
        exhausted: usage.outOfService + 1 > allowedHere
      }
    })
    const pauses = [...fleet.state.pauses].filter(([, p]) => pauseActive(p, at)).map(([key]) => ({ scope: key === 'cluster' ? 'cluster' : `pool=${key.slice('pool/'.length)}` }))
    return { phases: byPhase, slotsHeld: fleet.slotsHeld(), departed: fleet.state.departed.size, scopes, pauses }
  }
  // How long each phase may last before something is wrong: its deadline plus a minute's headroom.
  const headroom = 60_000
  metrics.bindFleet(reading, new Map<Phase, number>([
    ['cordoned', headroom],
    ['draining', policy.drainTimeoutMs + headroom],
    ['remediating', config.providerTimeoutMs + headroom],
    ['rebooting', policy.rebootTimeoutMs + headroom],
    ['replacing', policy.replaceTimeoutMs + headroom],
    ['verifying', policy.verifyDwellMs + policy.rebootTimeoutMs + headroom]
  ]))

  return {
    intake,
    /** A full pass now (or right after the one under way): every tracked node and the schedule. */
    reconcile () {
      for (const view of fleet.withRecords()) queue.add(view.name)
      startVerdicts.clear()
      scheduleDirty = true
      return kick()
    },
    async nodes (): Promise<NodeStatus[]> {
      await ensureLoaded()
      const at = now()
      const blocks = blocksNow(at)
      return [...fleet.values()].filter(view => view.record !== undefined || view.recordError !== undefined || outOfServiceCauseOf(view) !== undefined).map(view => statusOf(view, blocks, at))
    },
    async node (name: string): Promise<NodeStatus | undefined> {
      await ensureLoaded()
      const view = fleet.get(name)
      const at = now()
      return view === undefined ? undefined : statusOf(view, blocksNow(at), at)
    },
    /** The pauses in force (read fresh: a pause set through another replica shows at once) and the windows. */
    async pauses () {
      await ensureLoaded()
      adopt(await fleetState.refresh())
      const at = now()
      const windows = config.windows
      return {
        // `cluster` sorts before every `pool/…`: the widest first.
        pauses: [...fleet.state.pauses].filter(([, p]) => pauseActive(p, at)).sort(([a], [b]) => a < b ? -1 : 1).map(([key, p]) => ({ scope: key === 'cluster' ? 'cluster' as const : 'pool' as const, ...(key === 'cluster' ? {} : { pool: key.slice('pool/'.length) }), ...p })),
        windows: { spec: describeWindows(windows), open: windows.length === 0 || isOpen(windows, at), nextOpening: windows.length === 0 || isOpen(windows, at) ? null : iso(nextOpening(windows, at) ?? at) }
      }
    },
    /** Sets (or lifts, with undefined) a pause; any replica may: it is persisted for all of them. */
    async setPause (pool: string | undefined, pause: Pause | undefined) {
      const key = pauseKey(pool)
      adopt(await fleetState.update(state => {
        const pauses = new Map(state.pauses)
        if (pause === undefined) pauses.delete(key)
        else pauses.set(key, pause)
        return { ...state, pauses }
      }))
      log.info({ scope: key, pause }, pause === undefined ? `pause of ${key} lifted` : `paused ${key}: ${pause.reason}`)
      await cluster.recordEvent(controllerRef(), pause === undefined
        ? { type: 'Normal', reason: 'RemediationUnpaused', action: 'unpause', note: `${key === 'cluster' ? 'cluster-wide pause' : `pause of ${key}`} lifted` }
        : { type: 'Normal', reason: 'RemediationPaused', action: 'pause', note: `${key === 'cluster' ? 'paused cluster-wide' : `paused ${key}`} by ${pause.by}: ${pause.reason}${pause.until === undefined ? '' : ` (until ${pause.until})`}` }).catch(err => log.warn({ err }, 'could not record event'))
      for (const view of fleet.withRecords()) queue.add(view.name)
      scheduleDirty = true
      void kick()
    },
    /** Injected faults that still count, fleet-wide. */
    async faults () {
      await ensureLoaded()
      const at = now()
      const found: Array<{ node: string, alertname: string, fingerprint: string, startsAt: string, endsAt: string, summary?: string }> = []
      for (const view of fleet.withAlerts()) {
        for (const alert of liveAlerts(view.record, at, policy)) {
          if (alert.source !== 'fault') continue
          found.push({ node: view.name, alertname: alert.alertname, fingerprint: alert.fingerprint, startsAt: alert.startsAt, endsAt: alert.endsAt ?? '', ...(alert.summary === undefined ? {} : { summary: alert.summary }) })
        }
      }
      return found
    },
    async budget (): Promise<BudgetStatus> {
      await ensureLoaded()
      return budget()
    },
    /**
     * An operator frees the slot of a departed node whose pool did not become whole by
     * REPLACE_TIMEOUT (`failed`): only then, so a replacement under way cannot be cut short.
     * Answers the entry released, or why not.
     */
    async releaseDeparted (node: string): Promise<ReleaseOutcome> {
      await ensureLoaded()
      let outcome: ReleaseOutcome = { released: false, refused: 'not-found', reason: `no departed node ${node}` }
      adopt(await fleetState.update(state => {
        const entry = state.departed.get(node)
        if (entry === undefined) return state
        if (entry.failed === undefined) {
          outcome = { released: false, refused: 'waiting', reason: `departed node ${node} is still waiting for its pool to be whole (until ${entry.deadline}); it can be released once it has failed` }
          return state
        }
        outcome = { released: true }
        const departed = new Map(state.departed)
        departed.delete(node)
        return { ...state, departed }
      }))
      if (outcome.released) {
        unsavedDepartures.delete(node)
        log.info({ node }, `departed node ${node} released by an operator; its slot is free`)
        await cluster.recordEvent(controllerRef(), { type: 'Normal', reason: 'RemediationDepartedReleased', action: 'release', note: `departed node ${node} released by an operator: its slot is free` }).catch(err => log.warn({ err }, 'could not record event'))
        scheduleDirty = true
        void kick()
      }
      return outcome
    },
    /** The fleet the gauges read at scrape time. */
    fleet,
    /** True once the persisted state has been read (a follower has nothing to recover). */
    get recovered () { return recovered || !leader },
    /** Resolves when the pass under way and every node worker have settled; for tests and shutdown. */
    async idle () {
      while (running !== undefined || workers.size > 0) await Promise.all([running, ...[...workers.values()].map(w => w.done)])
    },
    /** A version of the controller's Lease read by the elector: pauses set through another replica show here. */
    observeControllerState (stored: ControllerState) {
      const before = fleet.state.pauses
      adopt(fleetState.observe(stored))
      if (JSON.stringify([...before]) === JSON.stringify([...fleet.state.pauses])) return
      for (const view of fleet.withRecords()) queue.add(view.name)
      scheduleDirty = true
      void kick()
    },
    /** Leadership changes: a replica that loses it stops acting at once (a pass under way stops at its next step). */
    async setLeader (value: boolean) {
      leader = value
      metrics.leader.set(value ? 1 : 0)
      if (value) {
        recovered = false
        loaded = false
        void kick()
        return
      }
      for (const worker of workers.values()) worker.controller.abort(new Error('leadership lost'))
      await Promise.all([...workers.values()].map(w => w.done))
    },
    start () {
      unsubscribe = cluster.onNodeChange((node, deleted) => { if (observing) observe(node, deleted) })
      ticker = setInterval(() => { scheduleDirty = true; void kick() }, config.reconcileIntervalMs)
      ticker.unref()
      if (deps.alertmanager !== undefined) {
        alertmanagerTicker = setInterval(() => { void syncAlertmanager() }, config.alertmanagerSyncMs)
        alertmanagerTicker.unref()
      }
      resyncTicker = setInterval(() => { loaded = false; void ensureLoaded().then(() => kick(), err => log.warn({ err }, 'resync failed')) }, config.resyncIntervalMs)
      resyncTicker.unref()
      void ensureLoaded().then(() => kick(), err => log.warn({ err }, 'first load failed; retrying at the next interval'))
    },
    async stop () {
      stopped = true
      unsubscribe?.()
      clearInterval(ticker)
      clearInterval(resyncTicker)
      clearInterval(alertmanagerTicker)
      clearTimeout(fleetTimer)
      for (const timer of timers.values()) clearTimeout(timer)
      leader = false
      for (const worker of workers.values()) worker.controller.abort(new Error('shutting down'))
      await Promise.all([running, ...[...workers.values()].map(w => w.done)])
    }
  }
}
