import { ApiException, CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node'
import type { Logger } from 'pino'
import type { ControllerState } from '../cluster.ts'

/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go does it:
 * - a holder renews every `retryPeriodMs`; if it cannot renew for `renewDeadlineMs` it stops acting
 *   at once, which is before the lease can look expired to anyone else (`leaseDurationMs` is longer);
 * - a candidate judges expiry by its own clock, from when it last saw the record change, so clock
 *   skew between replicas cannot shorten the wait;
 * - writes carry the resourceVersion, so two candidates cannot both win.
 */
export type ElectionOptions = {
  kubeConfig: KubeConfig
  namespace: string
  name: string
  identity: string
  leaseDurationMs: number
  renewDeadlineMs: number
  retryPeriodMs: number
  log: Logger
  onStartedLeading: () => void
  /** Must stop all acting before it returns (it may be async). */
  onStoppedLeading: () => void | Promise<void>
  /**
   * Every version of the Lease this replica reads or writes, leader or not: the fleet state lives
   * in its annotations, so an operator's pause set elsewhere is seen within one retry period
   * without a request of its own.
   */
  onObserved?: (state: ControllerState) => void
  now?: () => number
}

export type Elector = {
  isLeader (): boolean
  /**
   * True only while the lease is certainly ours: leading, and renewed less than the renew
   * deadline ago (so before anyone else can see it expired). Asked right before every write; the
   * watchdog's demotion may come a moment later.
   */
  leaseValid (): boolean
  /** Stops campaigning; a leader stops acting and hands the lease back (expires it) for a fast failover. */
  stop (): Promise<void>
}

function status (err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined
}

export function startLeaderElection (options: ElectionOptions): Elector {
  const { namespace, name, identity, log } = options
  if (options.renewDeadlineMs >= options.leaseDurationMs) throw new Error('renewDeadline must be shorter than leaseDuration')
  const now = options.now ?? Date.now
  const api = options.kubeConfig.makeApiClient(CoordinationV1Api)
  const durationSeconds = Math.ceil(options.leaseDurationMs / 1000)
  let leader = false
  let stopped = false
  let lastRenew = 0
  let observed: { holder: string | undefined, renewTime: string | undefined, at: number } | undefined
  let timer: NodeJS.Timeout | undefined
  let loop: Promise<void> = Promise.resolve()

  const spec = (previous: V1Lease | undefined, transitions: number): V1Lease => ({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: previous?.metadata ?? { name, namespace },
    spec: {
      holderIdentity: identity,
      leaseDurationSeconds: durationSeconds,
      acquireTime: previous?.spec?.holderIdentity === identity && previous.spec.acquireTime !== undefined ? previous.spec.acquireTime : new V1MicroTime(now()),
      renewTime: new V1MicroTime(now()),
      leaseTransitions: transitions
    }
  })

  const observe = (lease: V1Lease) => options.onObserved?.({ annotations: lease.metadata?.annotations ?? {}, version: lease.metadata?.resourceVersion ?? '' })

  /** One attempt to acquire or renew. True when we hold the lease afterwards. */
  async function tryAcquireOrRenew (): Promise<boolean> {
    let current: V1Lease | undefined
    try {
      current = await api.readNamespacedLease({ name, namespace })
    } catch (err) {
      if (status(err) !== 404) throw err
      await api.createNamespacedLease({ namespace, body: spec(undefined, 0) })
      return true
    }
    observe(current)
    const holder = current.spec?.holderIdentity
    const renewTime = current.spec?.renewTime === undefined ? undefined : new Date(current.spec.renewTime).toISOString()
    if (observed === undefined || observed.holder !== holder || observed.renewTime !== renewTime) {
      observed = { holder, renewTime, at: now() }
    }
    const duration = (current.spec?.leaseDurationSeconds ?? durationSeconds) * 1000
    const free = holder === undefined || holder === ''
    if (holder !== identity && !free && now() < observed.at + duration) {
      // Someone else holds it: whatever we believed, we are not the leader now. Stop at once
      // rather than at the renew deadline, so nothing is written meanwhile.
      if (leader) await demote(`the lease is held by ${holder}`)
      return false
    }
    const transitions = (current.spec?.leaseTransitions ?? 0) + (holder === identity ? 0 : 1)
    // replace carries metadata.resourceVersion: a concurrent writer makes this fail with 409.
    observe(await api.replaceNamespacedLease({ name, namespace, body: spec(current, transitions) }))
    return true
  }

  async function step () {
    try {
      const held = await tryAcquireOrRenew()
      if (held) lastRenew = now()
      if (held && !leader && !stopped) {
        leader = true
        log.info({ lease: `${namespace}/${name}`, identity }, 'became the leader: acting')
        options.onStartedLeading()
      }
    } catch (err) {
      const code = status(err)
      if (code !== 409) log.warn({ err: code === undefined ? err : `HTTP ${code}`, lease: `${namespace}/${name}` }, 'lease request failed')
    }
  }

  // Checked on its own timer: a renewal request that hangs must not delay the demotion.
  const watchdog = setInterval(() => {
    if (leader && now() - lastRenew >= options.renewDeadlineMs) void demote('could not renew the lease within the renew deadline')
  }, Math.max(50, Math.floor(options.retryPeriodMs / 2)))

  async function demote (reason: string) {
    if (!leader) return
    leader = false
    log.warn({ lease: `${namespace}/${name}`, identity, reason }, 'lost the leadership: stopped acting')
    await options.onStoppedLeading()
  }

  function schedule () {
    if (stopped) return
    timer = setTimeout(() => {
      loop = step().finally(schedule)
    }, options.retryPeriodMs)
  }

  loop = step().finally(schedule)

  return {
    isLeader: () => leader,
    leaseValid: () => leader && now() - lastRenew < options.renewDeadlineMs,
    async stop () {
      stopped = true
      clearTimeout(timer)
      clearInterval(watchdog)
      await loop
      const wasLeader = leader
      await demote('shutting down')
      if (!wasLeader) return
      // Hand the lease back so another replica takes over without waiting for it to expire.
      try {
        const current = await api.readNamespacedLease({ name, namespace })
        if (current.spec?.holderIdentity === identity) {
          await api.replaceNamespacedLease({ name, namespace, body: { ...current, spec: { ...current.spec, holderIdentity: '', leaseDurationSeconds: 1 } } })
        }
      } catch (err) {
        log.warn({ err }, 'could not release the lease; it will expire')
      }
    }
  }
}
