import t from 'tap'
import { TerminateInstanceInAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling'
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2'
import { ProviderError } from '../../src/providers/provider.ts'
import type { ProviderAction, ProviderRequest } from '../../src/providers/provider.ts'
import { classifyAwsError, parseAwsProviderId, REMEDIATION_TAG_KEY } from '../../src/providers/aws.ts'
import { RetriesExhaustedError, withRetries } from '../../src/providers/retry.ts'
import type { V1Node } from '@kubernetes/client-node'
import { readFile } from 'node:fs/promises'
import { nodeFor, startAwsWorld } from './aws-fixture.ts'

const MUTATING = ['CreateTags', 'RebootInstances', 'TerminateInstances', 'TerminateInstanceInAutoScalingGroup']

const req = (node: V1Node, action: ProviderAction, remediationId: string, signal: AbortSignal = new AbortController().signal): ProviderRequest =>
  ({ node, action, remediationId, signal })

async function rejection (p: Promise<unknown>): Promise<unknown> {
  return p.then(() => { throw new Error('expected a rejection, got a result') }, (e: unknown) => e)
}

// ---------- pure parts ----------

t.test('parseAwsProviderId', async t => {
  t.same(parseAwsProviderId('aws:///us-east-1a/i-0123456789abcdef0'), { zone: 'us-east-1a', instanceId: 'i-0123456789abcdef0' })
  t.same(parseAwsProviderId('aws:///eu-west-1b/i-0abc1234'), { zone: 'eu-west-1b', instanceId: 'i-0abc1234' }, 'old 8-digit ids')
  for (const bad of [undefined, '', 'gce://project/zone/name', 'aws://us-east-1a/i-0123456789abcdef0', 'aws:///us-east-1a/', 'aws:///i-0123456789abcdef0',
    'aws:///us-east-1a/i-XYZ', 'aws:///us-east-1a/i-0123456789abcdef0/extra', 'kind://docker/kind/kind-worker']) {
    const err = (() => { try { parseAwsProviderId(bad); return undefined } catch (e) { return e } })()
    t.ok(err instanceof ProviderError, `${JSON.stringify(bad)} rejected`)
    if (err instanceof ProviderError) {
      t.equal(err.retryable, false)
      t.ok(err.message.includes(JSON.stringify(bad ?? null)), `message quotes the value: ${err.message}`)
    }
  }
})

t.test('classifyAwsError', async t => {
  const sdkError = (name: string, status: number, message = 'm') => Object.assign(new Error(message), { name, Code: name, $metadata: { httpStatusCode: status } })
  for (const [name, status] of [['ThrottlingException', 400], ['RequestLimitExceeded', 503], ['Throttling', 400], ['TooManyRequestsException', 429]] as const) {
    const c = classifyAwsError(sdkError(name, status), 'Op')
    t.equal(c.retryable, true, `${name} retryable`)
    t.match(c.message, /throttled/)
  }
  t.equal(classifyAwsError(sdkError('InternalError', 500), 'Op').retryable, true, '5xx retryable')
  t.equal(classifyAwsError(Object.assign(new Error('@aws-sdk XML parse error: mismatched tags'), { $metadata: { httpStatusCode: 500 } }), 'Op').retryable, true, 'unparseable 500 retryable')
  t.equal(classifyAwsError(sdkError('ResourceContention', 500), 'Op').retryable, true)
  t.equal(classifyAwsError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), 'Op').retryable, true, 'network reset retryable')
  t.equal(classifyAwsError(sdkError('UnauthorizedOperation', 403), 'Op').retryable, false, 'authz not retryable')
  t.equal(classifyAwsError(sdkError('ValidationError', 400), 'Op').retryable, false, 'validation not retryable')
  const abort = Object.assign(new Error('Request aborted'), { name: 'AbortError' })
  t.equal(classifyAwsError(abort, 'Op').retryable, false, 'abort not retryable')
  const own = new ProviderError('mine', { retryable: true })
  t.equal(classifyAwsError(own, 'Op'), own, 'ProviderError passes through')
})

// ---------- against moto ----------

const world = await startAwsWorld()
t.teardown(() => world.close())
t.beforeEach(() => world.reset())

t.test('moto facts this provider relies on', async t => {
  // an unknown id: DescribeInstances answers InvalidInstanceID.NotFound (400), a proper XML error
  const unknown = 'i-0123456789abcdef0'
  const describeErr = await rejection(world.ec2.send(new DescribeInstancesCommand({ InstanceIds: [unknown] })))
  t.match(describeErr, { name: 'InvalidInstanceID.NotFound', $metadata: { httpStatusCode: 400 } }, 'DescribeInstances: InvalidInstanceID.NotFound')
  // TerminateInstanceInAutoScalingGroup for an instance in no group: moto crashes → HTML 500 → SDK parse error
  const tiiasgErr = await rejection(world.autoscaling.send(new TerminateInstanceInAutoScalingGroupCommand({ InstanceId: unknown, ShouldDecrementDesiredCapacity: false })))
  t.match(tiiasgErr, { $metadata: { httpStatusCode: 500 } }, 'TerminateInstanceInAutoScalingGroup on an unknown id: HTTP 500')
  t.match(String((tiiasgErr as Error).message), /parse error/i, 'which the SDK reports as a parse error')
  t.equal(classifyAwsError(tiiasgErr, 'TIIASG').retryable, true, 'classified as a retryable 5xx on its own')
})

t.test('bad providerID: non-retryable, quotes the value, no API call', async t => {
  const provider = world.provider()
  for (const action of ['reboot', 'replace'] as const) {
    const node: V1Node = { metadata: { name: 'weird' }, spec: { providerID: 'azure:///subscriptions/x/vm-1' } }
    const err = await rejection(provider.remediate(req(node, action, 'r-bad')))
    t.ok(err instanceof ProviderError, `${action}: ProviderError`)
    t.equal((err as ProviderError).retryable, false)
    t.match((err as Error).message, /"azure:\/\/\/subscriptions\/x\/vm-1" is not of the form aws:\/\/\/ZONE\/i-INSTANCEID/)
  }
  const missing = await rejection(provider.remediate(req({ metadata: { name: 'no-spec' } }, 'reboot', 'r-none')))
  t.match((missing as Error).message, /providerID null is not of the form/)
  t.equal(world.proxy.calls.length, 0, 'nothing was sent to AWS')

  const wrapped = withRetries(provider, { deadlineMs: 5000, initialDelayMs: 10, maxDelayMs: 50 })
  const wrappedErr = await rejection(wrapped.remediate(req({ metadata: { name: 'weird' }, spec: { providerID: 'nope' } }, 'replace', 'r')))
  t.ok(wrappedErr instanceof RetriesExhaustedError)
  t.match(wrappedErr, { reason: 'non-retryable', attempts: 1 }, 'the wrapper does not retry it')
})

t.test('replace: terminates inside the ASG, a replacement launches, desired capacity kept; repeat is a no-op', async t => {
  const provider = world.provider()
  const [victim, other] = await world.createAsg('workers', 2)
  if (victim === undefined || other === undefined) throw new Error('ASG did not launch 2 instances')
  const node = nodeFor(victim)

  const first = await provider.remediate(req(node, 'replace', 'rem-1'))
  t.match(first.detail, new RegExp(`terminated instance ${victim} .*in Auto Scaling group workers without decrementing desired capacity`))
  t.equal(await world.instanceState(victim), 'terminated', 'old instance terminated')
  const after = await world.asg('workers')
  t.equal(after.desired, 2, 'desired capacity unchanged')
  t.equal(after.instances.length, 2, 'group has 2 instances again')
  t.notOk(after.instances.some(i => i.id === victim), 'old instance left the group')
  t.ok(after.instances.some(i => i.id === other), 'the other instance untouched')
  const replacement = after.instances.find(i => i.id !== other)
  t.ok(replacement !== undefined && replacement.id !== victim, `a replacement was launched (${replacement?.id})`)
  t.equal(await world.instanceState(other), 'running')
  const tiiasg = world.proxy.calls.find(c => c.action === 'TerminateInstanceInAutoScalingGroup')
  t.equal(tiiasg?.params.get('ShouldDecrementDesiredCapacity'), 'false', 'sent ShouldDecrementDesiredCapacity=false')

  const second = await provider.remediate(req(node, 'replace', 'rem-1'))
  t.match(second, { outcome: 'replacing', detail: /already terminated for remediation rem-1 .*it is being replaced/ }, 'the same remediation: our replacement under way')
  const third = await provider.remediate(req(node, 'replace', 'rem-2'))
  t.match(third, { outcome: 'not-performed', detail: /is already terminated; nothing to replace/ }, 'another remediation finds the machine gone: nothing it did fixes anything')
  t.equal(world.proxy.attempted('TerminateInstanceInAutoScalingGroup'), 1, 'exactly one terminate call in total')
  t.equal(world.proxy.attempted('TerminateInstances'), 0)
  const final = await world.asg('workers')
  t.equal(final.desired, 2, 'desired still 2')
  t.equal(final.instances.length, 2, 'no extra instance launched')
})

t.test('replace of an instance outside any ASG is refused; allowed only with allowReplaceOutsideAsg', async t => {
  const lonely = await world.runStandalone()
  const node = nodeFor(lonely)
  const err = await rejection(world.provider().remediate(req(node, 'replace', 'rem-x')))
  t.ok(err instanceof ProviderError)
  t.equal((err as ProviderError).retryable, false)
  t.match((err as Error).message, /refusing to replace instance .* is not in any Auto Scaling group.*shrink capacity/)
  t.equal(await world.instanceState(lonely), 'running', 'still running')
  for (const action of MUTATING) t.equal(world.proxy.attempted(action), 0, `no ${action}`)

  const permissive = world.provider({ allowReplaceOutsideAsg: true })
  const done = await permissive.remediate(req(node, 'replace', 'rem-y'))
  t.match(done.detail, /terminated instance .* which is in no Auto Scaling group/)
  t.equal(await world.instanceState(lonely), 'terminated')
  const again = await permissive.remediate(req(node, 'replace', 'rem-y'))
  t.match(again.detail, /already terminated/)
  t.equal(world.proxy.attempted('TerminateInstances'), 1, 'terminated once')
})

t.test('reboot: once per remediationId, proven by the calls moto answered and the tag', async t => {
  const provider = world.provider()
  const [id] = await world.createAsg('rebooters', 1)
  if (id === undefined) throw new Error('no instance')
  const node = nodeFor(id)

  const first = await provider.remediate(req(node, 'reboot', 'rem-a'))
  t.match(first.detail, /^rebooted instance .* for remediation rem-a$/)
  t.equal(world.proxy.succeeded('RebootInstances', id), 1)
  t.equal((await world.instanceTags(id)).get(REMEDIATION_TAG_KEY), 'rem-a', 'tagged with the remediation id')
  const tagCall = world.proxy.calls.findIndex(c => c.action === 'CreateTags')
  const rebootCall = world.proxy.calls.findIndex(c => c.action === 'RebootInstances')
  t.ok(tagCall >= 0 && tagCall < rebootCall, 'tag written before the reboot')

  const second = await provider.remediate(req(node, 'reboot', 'rem-a'))
  t.match(second.detail, /a reboot of instance .* was already issued for remediation rem-a \(tag self-healing-controller\/remediation-id\); not rebooting again/)
  t.equal(world.proxy.attempted('RebootInstances'), 1, 'no second reboot for the same id')

  // a fresh provider (e.g. after a controller restart) sees the tag too
  const restarted = world.provider()
  await restarted.remediate(req(node, 'reboot', 'rem-a'))
  t.equal(world.proxy.attempted('RebootInstances'), 1, 'no reboot after a restart either')

  const next = await provider.remediate(req(node, 'reboot', 'rem-b'))
  t.match(next.detail, /rebooted .* rem-b/)
  t.equal(world.proxy.succeeded('RebootInstances', id), 2, 'a new remediation reboots again')
  t.equal((await world.instanceTags(id)).get(REMEDIATION_TAG_KEY), 'rem-b')
  t.equal(await world.instanceState(id), 'running')
})

t.test('reboot rejected by throttling after the tag was written is retried, not skipped', async t => {
  const provider = world.provider()
  const [id] = await world.createAsg('throttled-reboot', 1)
  if (id === undefined) throw new Error('no instance')
  const node = nodeFor(id)
  world.proxy.inject({ service: 'ec2', action: 'RebootInstances', times: 1, fault: { kind: 'throttle' } })
  const err = await rejection(provider.remediate(req(node, 'reboot', 'rem-t')))
  t.ok(err instanceof ProviderError)
  t.equal((err as ProviderError).retryable, true, 'RequestLimitExceeded (503) is retryable')
  t.match((err as Error).message, /RebootInstances .* throttled: RequestLimitExceeded \(HTTP 503\)/)
  t.equal((await world.instanceTags(id)).get(REMEDIATION_TAG_KEY), 'rem-t', 'the tag is already there')
  t.equal(world.proxy.succeeded('RebootInstances', id), 0)

  const retry = await provider.remediate(req(node, 'reboot', 'rem-t'))
  t.match(retry.detail, /^rebooted/)
  t.equal(world.proxy.succeeded('RebootInstances', id), 1, 'rebooted on the retry')
  await provider.remediate(req(node, 'reboot', 'rem-t'))
  t.equal(world.proxy.succeeded('RebootInstances', id), 1, 'and only once')
})

t.test('unknown instance id counts as gone for reboot and replace; none does nothing', async t => {
  const provider = world.provider()
  const node = nodeFor('i-0123456789abcdef0')
  const reboot = await provider.remediate(req(node, 'reboot', 'rem-u'))
  t.match(reboot.detail, /instance i-0123456789abcdef0 .* does not exist .* treating it as already gone, nothing to reboot/)
  t.equal(reboot.outcome, 'not-performed', 'a machine that is gone is not waited for, and not counted as a fix')
  const replace = await provider.remediate(req(node, 'replace', 'rem-u'))
  t.match(replace.detail, /does not exist .* nothing to replace/)
  const none = await provider.remediate(req(node, 'none', 'rem-u'))
  t.match(none.detail, /left alone/)
  for (const action of MUTATING) t.equal(world.proxy.attempted(action), 0, `no ${action}`)
  t.equal(world.proxy.calls.length, 2, 'one DescribeInstances per machine action, nothing for none')
})

t.test('instance terminated by someone else mid-replace: moto\'s real HTML 500 is read as done', async t => {
  const provider = world.provider()
  const [victim] = await world.createAsg('raced', 2)
  if (victim === undefined) throw new Error('no instance')
  // a concurrent actor terminates the instance between our look and our call
  world.proxy.before('TerminateInstanceInAutoScalingGroup', async () => {
    await world.autoscaling.send(new TerminateInstanceInAutoScalingGroupCommand({ InstanceId: victim, ShouldDecrementDesiredCapacity: false }))
  })
  const result = await provider.remediate(req(nodeFor(victim), 'replace', 'rem-r'))
  t.match(result.detail, /already terminated; nothing to replace \(it went away concurrently; TerminateInstanceInAutoScalingGroup had answered: .*HTTP 500/)
  const ours = world.proxy.calls.find(c => c.action === 'TerminateInstanceInAutoScalingGroup')
  t.equal(ours?.status, 500, 'moto itself answered 500')
  t.equal(ours?.injected, false, 'not an injected fault')
  const group = await world.asg('raced')
  t.equal(group.desired, 2)
  t.equal(group.instances.length, 2)
})

t.test('injected HTML 500 on a live instance stays a retryable error (no false "done")', async t => {
  const provider = world.provider()
  const [id] = await world.createAsg('html500', 1)
  if (id === undefined) throw new Error('no instance')
  world.proxy.inject({ service: 'autoscaling', action: 'TerminateInstanceInAutoScalingGroup', times: 1, fault: { kind: 'html500' } })
  const err = await rejection(provider.remediate(req(nodeFor(id), 'replace', 'rem-h')))
  t.ok(err instanceof ProviderError)
  t.equal((err as ProviderError).retryable, true)
  t.match((err as Error).message, /server error \(HTTP 500\) with a body the SDK could not parse/)
  t.equal(await world.instanceState(id), 'running', 'not terminated')
})

t.test('throttling: the retry wrapper retries EC2 and Auto Scaling throttles and succeeds', async t => {
  const provider = withRetries(world.provider(), { deadlineMs: 20_000, initialDelayMs: 20, maxDelayMs: 200 })
  const [victim] = await world.createAsg('throttled', 2)
  if (victim === undefined) throw new Error('no instance')
  world.proxy.inject({ service: 'ec2', action: 'DescribeInstances', times: 2, fault: { kind: 'throttle' } })
  world.proxy.inject({ service: 'autoscaling', action: 'DescribeAutoScalingInstances', times: 1, fault: { kind: 'throttle', code: 'ThrottlingException', status: 400 } })
  world.proxy.inject({ service: 'autoscaling', action: 'TerminateInstanceInAutoScalingGroup', times: 1, fault: { kind: 'throttle' } })
  const result = await provider.remediate(req(nodeFor(victim), 'replace', 'rem-th'))
  // 1: Describe throttled; 2: Describe throttled; 3: DASI throttled; 4: TIIASG throttled; 5: ok
  t.match(result.detail, /terminated instance .* \(after 5 attempts\)$/)
  t.equal(world.proxy.calls.filter(c => c.injected).length, 4, 'all four faults were served')
  t.equal(world.proxy.succeeded('TerminateInstanceInAutoScalingGroup', victim), 1)
  t.equal(await world.instanceState(victim), 'terminated')
  const group = await world.asg('throttled')
  t.equal(group.desired, 2)
  t.equal(group.instances.length, 2)
})

t.test('throttling: the retry wrapper gives up at the deadline with a clear message', async t => {
  const provider = withRetries(world.provider(), { deadlineMs: 600, initialDelayMs: 50, maxDelayMs: 100 })
  const [id] = await world.createAsg('throttled-forever', 1)
  if (id === undefined) throw new Error('no instance')
  world.proxy.inject({ service: 'ec2', action: 'DescribeInstances', times: 10_000, fault: { kind: 'throttle' } })
  const started = performance.now()
  const err = await rejection(provider.remediate(req(nodeFor(id), 'reboot', 'rem-d')))
  const elapsed = performance.now() - started
  t.ok(err instanceof RetriesExhaustedError)
  if (err instanceof RetriesExhaustedError) {
    t.equal(err.reason, 'deadline')
    t.ok(err.attempts >= 3, `several attempts (${err.attempts})`)
    t.equal(world.proxy.attempted('DescribeInstances'), err.attempts, 'one DescribeInstances per attempt')
    t.match(err.message, new RegExp(`aws: reboot of node .* failed after ${err.attempts} attempts in \\d+ms: .*deadline of 600ms.*RequestLimitExceeded`))
  }
  t.ok(elapsed < 2000, `stopped near the deadline (${Math.round(elapsed)}ms)`)
  for (const action of MUTATING) t.equal(world.proxy.attempted(action), 0, `no ${action}`)
})

t.test('abort: pre-aborted signal sends nothing; an abort mid-call cuts the request', async t => {
  const provider = world.provider()
  const [id] = await world.createAsg('aborted', 1)
  if (id === undefined) throw new Error('no instance')
  const node = nodeFor(id)

  const pre = new AbortController()
  pre.abort(new Error('shutdown'))
  const preErr = await rejection(provider.remediate(req(node, 'replace', 'rem-ab', pre.signal)))
  t.ok(preErr instanceof ProviderError)
  t.match((preErr as Error).message, /aborted before acting: shutdown/)
  t.equal(world.proxy.calls.length, 0, 'nothing sent')

  world.proxy.inject({ service: 'ec2', action: 'DescribeInstances', times: 1, fault: { kind: 'hang' } })
  const mid = new AbortController()
  const started = performance.now()
  setTimeout(() => mid.abort(new Error('remediation deadline')), 200)
  const midErr = await rejection(provider.remediate(req(node, 'replace', 'rem-ab', mid.signal)))
  const elapsed = performance.now() - started
  t.ok(midErr instanceof ProviderError)
  t.equal((midErr as ProviderError).retryable, false)
  t.match((midErr as Error).message, /DescribeInstances .* aborted/)
  t.ok(elapsed < 2000, `rejected promptly (${Math.round(elapsed)}ms)`)
  t.equal(world.proxy.attempted('TerminateInstanceInAutoScalingGroup'), 0)
  t.equal(await world.instanceState(id), 'running')
})

t.test('deploy/aws/iam-policy.json allows exactly the calls the provider makes', async t => {
  const policy = JSON.parse(await readFile(new URL('../../deploy/aws/iam-policy.json', import.meta.url), 'utf8')) as {
    Statement: Array<{ Sid: string, Action: string | string[], Resource: string, Condition?: Record<string, Record<string, unknown>> }>
  }
  const allowed = new Set(policy.Statement.flatMap(s => Array.isArray(s.Action) ? s.Action : [s.Action]))

  // drive every path that calls AWS: reboot, replace in an ASG, replace outside (allowed), gone instance
  const [a] = await world.createAsg('iam', 2)
  const lonely = await world.runStandalone()
  if (a === undefined) throw new Error('no instance')
  await world.provider().remediate(req(nodeFor(a), 'reboot', 'iam-1'))
  await world.provider().remediate(req(nodeFor(a), 'replace', 'iam-1'))
  await world.provider({ allowReplaceOutsideAsg: true }).remediate(req(nodeFor(lonely), 'replace', 'iam-1'))
  const used = new Set(world.proxy.calls.map(c => `${c.service}:${c.action}`))

  t.same([...used].sort(), [...allowed].sort(), 'policy actions == actions used')
  for (const statement of policy.Statement) {
    const actions = Array.isArray(statement.Action) ? statement.Action : [statement.Action]
    const describeOnly = actions.every(a => /:Describe/.test(a))
    if (describeOnly) {
      t.equal(statement.Resource, '*', `${statement.Sid}: Describe* unscoped`)
    } else {
      t.not(statement.Resource, '*', `${statement.Sid}: scoped to a resource type`)
      const tagCondition = Object.keys(statement.Condition?.StringEquals ?? {}).some(k => /ResourceTag\/kubernetes\.io\/cluster\/CLUSTER_NAME$/.test(k))
      t.ok(tagCondition, `${statement.Sid}: conditioned on the cluster ownership tag`)
    }
  }
  const tagging = policy.Statement.find(s => s.Action === 'ec2:CreateTags')
  t.same(tagging?.Condition?.['ForAllValues:StringEquals']?.['aws:TagKeys'], [REMEDIATION_TAG_KEY], 'CreateTags limited to the remediation tag key')
})
