import {
  CreateTagsCommand,
  DescribeInstancesCommand,
  EC2Client,
  RebootInstancesCommand,
  TerminateInstancesCommand
} from '@aws-sdk/client-ec2'
import type { EC2ClientConfig, Instance } from '@aws-sdk/client-ec2'
import {
  AutoScalingClient,
  DescribeAutoScalingInstancesCommand,
  TerminateInstanceInAutoScalingGroupCommand
} from '@aws-sdk/client-auto-scaling'
import type { AutoScalingInstanceDetails } from '@aws-sdk/client-auto-scaling'
import type { V1Node } from '@kubernetes/client-node'
import { ProviderError } from './provider.ts'
import type { Provider, ProviderRequest, ProviderResult } from './provider.ts'

/** EC2 tag written on an instance just before it is rebooted; its value is the remediation id. */
export const REMEDIATION_TAG_KEY = 'self-healing-controller/remediation-id'

export type AwsProviderOptions = {
  /** Region for both clients; when absent the SDK's default chain (AWS_REGION, profile) decides. */
  region?: string
  /** Custom endpoint for both clients (e.g. a moto_server URL). */
  endpoint?: string
  /** Static credentials or a provider; when absent the SDK's default credential chain is used. */
  credentials?: EC2ClientConfig['credentials']
  /**
   * `replace` of an instance outside any Auto Scaling group terminates it with TerminateInstances.
   * Off by default: with nothing to launch a replacement, that only shrinks capacity.
   */
  allowReplaceOutsideAsg?: boolean
  /** The SDK's own attempts per call; default 1 so that withRetries owns backoff. */
  sdkMaxAttempts?: number
  /** Socket-level timeout per HTTP request; default 30 s. The remediation's signal still cuts it shorter. */
  requestTimeoutMs?: number
}

export type AwsProvider = Provider & {
  /** Closes the SDK clients' sockets. */
  destroy (): void
}

export type AwsInstanceRef = { zone: string, instanceId: string }

const PROVIDER_ID_PATTERN = /^aws:\/\/\/([a-z0-9-]+)\/(i-(?:[0-9a-f]{8}|[0-9a-f]{17}))$/

/** Parses `aws:///ZONE/i-...`; anything else is a non-retryable ProviderError quoting the value. */
export function parseAwsProviderId (providerID: string | undefined): AwsInstanceRef {
  const match = providerID === undefined ? null : PROVIDER_ID_PATTERN.exec(providerID)
  if (match === null || match[1] === undefined || match[2] === undefined) {
    throw new ProviderError(
      `aws: node spec.providerID ${JSON.stringify(providerID ?? null)} is not of the form aws:///ZONE/i-INSTANCEID; cannot tell which EC2 instance backs this node`,
      { retryable: false }
    )
  }
  return { zone: match[1], instanceId: match[2] }
}

// Error codes the AWS SDKs treat as throttling (EC2 answers RequestLimitExceeded with HTTP 503,
// Auto Scaling answers Throttling "Rate exceeded" with HTTP 400).
const THROTTLING_CODES = new Set([
  'BandwidthLimitExceeded', 'EC2ThrottledException', 'LimitExceededException', 'PriorRequestNotComplete',
  'ProvisionedThroughputExceededException', 'RequestLimitExceeded', 'RequestThrottled', 'RequestThrottledException',
  'SlowDown', 'ThrottledException', 'Throttling', 'ThrottlingException', 'TooManyRequestsException'
])
// Faults that say "not now" rather than "never": server-side trouble and Auto Scaling contention.
const TRANSIENT_CODES = new Set([
  'RequestTimeout', 'RequestTimeoutException', 'TimeoutError', 'ServiceUnavailable', 'Unavailable', 'InternalError',
  'InternalFailure', 'ResourceContention', 'ScalingActivityInProgress'
])
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND'])

type SdkErrorShape = {
  name?: unknown
  message?: unknown
  Code?: unknown
  code?: unknown
  $metadata?: { httpStatusCode?: unknown }
  $retryable?: { throttling?: unknown }
}

function errorFields (err: unknown): { code: string, status: number | undefined, message: string } {
  const e = (typeof err === 'object' && err !== null ? err : {}) as SdkErrorShape
  const code = typeof e.Code === 'string' ? e.Code : typeof e.code === 'string' ? e.code : typeof e.name === 'string' ? e.name : 'Error'
  const status = typeof e.$metadata?.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : undefined
  const message = typeof e.message === 'string' ? e.message : String(err)
  return { code, status, message }
}

function isThrottling (err: unknown): boolean {
  const { code, status } = errorFields(err)
  const e = (typeof err === 'object' && err !== null ? err : {}) as SdkErrorShape
  return THROTTLING_CODES.has(code) || status === 429 || e.$retryable?.throttling === true
}

function isInstanceNotFound (err: unknown): boolean {
  return errorFields(err).code === 'InvalidInstanceID.NotFound'
}

/**
 * True when the service definitely did not carry out the call: it throttled it (EC2 throttles with
 * HTTP 503) or rejected it with a 4xx. Other 5xx, network errors and aborts leave the outcome unknown.
 */
function isServiceRejection (err: unknown): boolean {
  if (isThrottling(err)) return true
  const { status } = errorFields(err)
  return status !== undefined && status >= 400 && status < 500
}

/**
 * Maps an SDK failure to a ProviderError: throttling, 5xx (including bodies the SDK cannot parse,
 * such as moto's HTML 500 pages), transient and network faults are retryable; everything else is not.
 */
export function classifyAwsError (err: unknown, operation: string, signal?: AbortSignal): ProviderError {
  if (err instanceof ProviderError) return err
  const { code, status, message } = errorFields(err)
  const http = status === undefined ? '' : ` (HTTP ${status})`
  if (code === 'AbortError' || signal?.aborted === true) {
    return new ProviderError(`aws: ${operation} aborted: ${message}`, { retryable: false, cause: err })
  }
  if (isThrottling(err)) {
    return new ProviderError(`aws: ${operation} throttled: ${code}${http}: ${message}`, { retryable: true, cause: err })
  }
  if (status !== undefined && status >= 500) {
    const unparsed = /parse error|Deserialization error/i.test(message) ? ' with a body the SDK could not parse' : ''
    return new ProviderError(`aws: ${operation} failed with a server error${http}${unparsed}: ${code}: ${message}`, { retryable: true, cause: err })
  }
  if (TRANSIENT_CODES.has(code) || NETWORK_CODES.has(code)) {
    return new ProviderError(`aws: ${operation} failed transiently: ${code}${http}: ${message}`, { retryable: true, cause: err })
  }
  return new ProviderError(`aws: ${operation} failed: ${code}${http}: ${message}`, { retryable: false, cause: err })
}

/** `state` is 'unknown' when EC2 does not know the instance; `gone` covers that and shutting-down/terminated. */
type InstanceView = { gone: boolean, state: string, tags: Map<string, string> }

const UNKNOWN_INSTANCE: InstanceView = { gone: true, state: 'unknown', tags: new Map() }

const GONE_STATES = new Set(['shutting-down', 'terminated'])

function abortedError (request: ProviderRequest, what: string): ProviderError {
  const reason: unknown = request.signal.reason
  const text = reason instanceof Error ? reason.message : String(reason)
  return new ProviderError(`aws: ${what} aborted before acting: ${text}`, { retryable: false, cause: reason })
}

function nodeName (node: V1Node): string {
  return node.metadata?.name ?? '(unnamed)'
}

/**
 * EC2 / Auto Scaling provider.
 *
 * - `replace`: instance in an Auto Scaling group → TerminateInstanceInAutoScalingGroup with
 *   ShouldDecrementDesiredCapacity=false, so the group launches a replacement. Outside a group it is
 *   refused unless `allowReplaceOutsideAsg` (then TerminateInstances). The same tag marks the instance
 *   first, so a repeated call that finds it gone with our id says `replacing` (our replacement), not
 *   `not-performed` (a machine someone else took away).
 * - `reboot`: RebootInstances, at most once per remediationId: the tag REMEDIATION_TAG_KEY=<id> is written
 *   before the reboot and a call that finds it already holding the id does not reboot again. If the service
 *   definitely refused the reboot itself (throttling, or another 4xx answer), this process remembers that and
 *   a retry with the same id does reboot; a reboot whose outcome is unknown (lost in flight, other 5xx, abort,
 *   or a crash between tag and reboot) is not repeated for the same id.
 * - `none`: no API call.
 * - An instance that is shutting-down, terminated or unknown to EC2 (and not marked by this remediation) is
 *   `not-performed`: nothing was fixed, whatever became of it.
 */
export function createAwsProvider (options: AwsProviderOptions = {}): AwsProvider {
  const config: EC2ClientConfig = {
    maxAttempts: options.sdkMaxAttempts ?? 1,
    requestHandler: { requestTimeout: options.requestTimeoutMs ?? 30_000 }
  }
  if (options.region !== undefined) config.region = options.region
  if (options.endpoint !== undefined) config.endpoint = options.endpoint
  if (options.credentials !== undefined) config.credentials = options.credentials
  const ec2 = new EC2Client({ ...config })
  const autoscaling = new AutoScalingClient({ ...config })
  const allowOutsideAsg = options.allowReplaceOutsideAsg === true

  // `${instanceId} ${remediationId}` whose reboot the service rejected after the tag was written.
  const rejectedReboots = new Set<string>()
  const rememberRejected = (key: string): void => {
    rejectedReboots.add(key)
    if (rejectedReboots.size > 10_000) {
      const oldest = rejectedReboots.values().next()
      if (oldest.done !== true) rejectedReboots.delete(oldest.value)
    }
  }

  async function describeInstance (instanceId: string, signal: AbortSignal): Promise<InstanceView> {
    let instance: Instance | undefined
    try {
      const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }), { abortSignal: signal })
      instance = (out.Reservations ?? []).flatMap(r => r.Instances ?? []).find(i => i.InstanceId === instanceId)
    } catch (err) {
      if (isInstanceNotFound(err)) return UNKNOWN_INSTANCE
      throw classifyAwsError(err, `DescribeInstances ${instanceId}`, signal)
    }
    if (instance === undefined) return UNKNOWN_INSTANCE
    const state = instance.State?.Name ?? 'unknown'
    const tags = new Map<string, string>()
    for (const tag of instance.Tags ?? []) {
      if (tag.Key !== undefined) tags.set(tag.Key, tag.Value ?? '')
    }
    return { gone: GONE_STATES.has(state), state, tags }
  }

  async function describeAsgMembership (instanceId: string, signal: AbortSignal): Promise<AutoScalingInstanceDetails | undefined> {
    try {
      const out = await autoscaling.send(new DescribeAutoScalingInstancesCommand({ InstanceIds: [instanceId] }), { abortSignal: signal })
      return (out.AutoScalingInstances ?? []).find(i => i.InstanceId === instanceId)
    } catch (err) {
      throw classifyAwsError(err, `DescribeAutoScalingInstances ${instanceId}`, signal)
    }
  }

  function goneDetail (who: string, view: InstanceView, what: string): string {
    return view.state === 'unknown'
      ? `${who} does not exist (EC2 does not know it); treating it as already gone, nothing to ${what}`
      : `${who} is already ${view.state}; nothing to ${what}`
  }

  async function reboot (request: ProviderRequest, instanceId: string): Promise<ProviderResult> {
    const { signal, remediationId } = request
    const who = `instance ${instanceId} (node ${nodeName(request.node)})`
    const view = await describeInstance(instanceId, signal)
    if (view.gone) return { detail: goneDetail(who, view, 'reboot'), outcome: 'not-performed' }
    if (view.state === 'stopping' || view.state === 'stopped') {
      throw new ProviderError(`aws: ${who} is ${view.state}; a reboot would not start it, refusing`, { retryable: false })
    }
    if (view.state === 'pending') {
      throw new ProviderError(`aws: ${who} is still pending; retry once it is running`, { retryable: true })
    }
    const key = `${instanceId} ${remediationId}`
    if (view.tags.get(REMEDIATION_TAG_KEY) === remediationId && !rejectedReboots.has(key)) {
      return { detail: `a reboot of ${who} was already issued for remediation ${remediationId} (tag ${REMEDIATION_TAG_KEY}); not rebooting again`, outcome: 'restarted' }
    }
    if (signal.aborted) throw abortedError(request, `reboot of ${who}`)
    try {
      await ec2.send(new CreateTagsCommand({ Resources: [instanceId], Tags: [{ Key: REMEDIATION_TAG_KEY, Value: remediationId }] }), { abortSignal: signal })
    } catch (err) {
      if (isInstanceNotFound(err)) return { detail: goneDetail(who, UNKNOWN_INSTANCE, 'reboot'), outcome: 'not-performed' }
      throw classifyAwsError(err, `CreateTags ${instanceId}`, signal)
    }
    try {
      await ec2.send(new RebootInstancesCommand({ InstanceIds: [instanceId] }), { abortSignal: signal })
    } catch (err) {
      if (isInstanceNotFound(err)) return { detail: goneDetail(who, UNKNOWN_INSTANCE, 'reboot'), outcome: 'not-performed' }
      if (isServiceRejection(err)) rememberRejected(key)
      throw classifyAwsError(err, `RebootInstances ${instanceId}`, signal)
    }
    rejectedReboots.delete(key)
    return { detail: `rebooted ${who} for remediation ${remediationId}`, outcome: 'restarted' }
  }

  async function replace (request: ProviderRequest, instanceId: string): Promise<ProviderResult> {
    const { signal, remediationId } = request
    const who = `instance ${instanceId} (node ${nodeName(request.node)})`
    const view = await describeInstance(instanceId, signal)
    // Marked just before we terminated it: gone now, it is our replacement under way (a repeated
    // call after a restart), not a machine found gone. Marked but still running: terminate again.
    if (view.gone && view.tags.get(REMEDIATION_TAG_KEY) === remediationId) {
      return { detail: `${who} was already terminated for remediation ${remediationId} (tag ${REMEDIATION_TAG_KEY}, state ${view.state}); it is being replaced`, outcome: 'replacing' }
    }
    if (view.gone) return { detail: goneDetail(who, view, 'replace'), outcome: 'not-performed' }
    const membership = await describeAsgMembership(instanceId, signal)
    const lifecycle = membership?.LifecycleState ?? ''
    const group = membership?.AutoScalingGroupName ?? ''

    if (membership !== undefined && (lifecycle.startsWith('Terminating') || lifecycle === 'Terminated')) {
      return { detail: `${who} is already being terminated by Auto Scaling group ${group} (lifecycle ${lifecycle}); it is being replaced`, outcome: 'replacing' }
    }
    if (membership !== undefined && lifecycle.startsWith('Warmed')) {
      throw new ProviderError(`aws: ${who} is in the warm pool of Auto Scaling group ${group} (lifecycle ${lifecycle}); refusing to replace it`, { retryable: false })
    }
    const inGroup = membership !== undefined && !lifecycle.startsWith('Detach')
    if (!inGroup && !allowOutsideAsg) {
      const why = membership === undefined ? 'is not in any Auto Scaling group' : `is ${lifecycle} from Auto Scaling group ${group}`
      throw new ProviderError(
        `aws: refusing to replace ${who}: it ${why}, so terminating it would shrink capacity with nothing to launch a replacement (set allowReplaceOutsideAsg to allow)`,
        { retryable: false }
      )
    }
    if (signal.aborted) throw abortedError(request, `replace of ${who}`)
    try {
      await ec2.send(new CreateTagsCommand({ Resources: [instanceId], Tags: [{ Key: REMEDIATION_TAG_KEY, Value: remediationId }] }), { abortSignal: signal })
    } catch (err) {
      if (isInstanceNotFound(err)) return { detail: goneDetail(who, UNKNOWN_INSTANCE, 'replace'), outcome: 'not-performed' }
      throw classifyAwsError(err, `CreateTags ${instanceId}`, signal)
    }

    if (inGroup) {
      if (signal.aborted) throw abortedError(request, `replace of ${who}`)
      try {
        const out = await autoscaling.send(new TerminateInstanceInAutoScalingGroupCommand({
          InstanceId: instanceId,
          ShouldDecrementDesiredCapacity: false
        }), { abortSignal: signal })
        const activity = out.Activity?.Description
        return {
          detail: `terminated ${who} in Auto Scaling group ${group} without decrementing desired capacity; the group launches a replacement` +
            (activity !== undefined ? ` (activity: ${activity})` : ''),
          outcome: 'replacing'
        }
      } catch (err) {
        const classified = classifyAwsError(err, `TerminateInstanceInAutoScalingGroup ${instanceId}`, signal)
        if (signal.aborted || isThrottling(err)) throw classified
        // Someone may have terminated or detached it between our look and the call (moto answers a
        // TerminateInstanceInAutoScalingGroup for an instance in no group with an HTML 500, which the SDK
        // reports as a parse error). Look again: gone or terminating now means done.
        const again = await describeInstance(instanceId, signal)
        if (again.gone) {
          return { detail: `${goneDetail(who, again, 'replace')} (it went away concurrently; TerminateInstanceInAutoScalingGroup had answered: ${classified.message})`, outcome: 'not-performed' }
        }
        const nowIn = await describeAsgMembership(instanceId, signal)
        const nowLifecycle = nowIn?.LifecycleState ?? ''
        if (nowLifecycle.startsWith('Terminating') || nowLifecycle === 'Terminated') {
          return { detail: `${who} is already being terminated by Auto Scaling group ${nowIn?.AutoScalingGroupName ?? group} (lifecycle ${nowLifecycle}); it is being replaced`, outcome: 'replacing' }
        }
        throw classified
      }
    }

    try {
      await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }), { abortSignal: signal })
    } catch (err) {
      if (isInstanceNotFound(err)) return { detail: goneDetail(who, UNKNOWN_INSTANCE, 'replace'), outcome: 'not-performed' }
      throw classifyAwsError(err, `TerminateInstances ${instanceId}`, signal)
    }
    return { detail: `terminated ${who}, which is in no Auto Scaling group (allowReplaceOutsideAsg); nothing launches a replacement automatically`, outcome: 'replacing' }
  }

  async function remediate (request: ProviderRequest): Promise<ProviderResult> {
    const name = nodeName(request.node)
    if (request.signal.aborted) throw abortedError(request, `${request.action} of node ${name}`)
    if (request.action === 'none') {
      return { detail: `aws: action 'none' for node ${name}; the EC2 instance was left alone (remediation ${request.remediationId})`, outcome: 'not-performed' }
    }
    const { instanceId } = parseAwsProviderId(request.node.spec?.providerID)
    if (request.action === 'reboot') return await reboot(request, instanceId)
    if (request.action === 'replace') return await replace(request, instanceId)
    throw new ProviderError(`aws: unknown action ${JSON.stringify(request.action)}`, { retryable: false })
  }

  return {
    name: 'aws',
    remediate,
    destroy () {
      ec2.destroy()
      autoscaling.destroy()
    }
  }
}
