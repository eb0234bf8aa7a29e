import { EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2'
import t from 'tap'
import { AMI } from '../providers/aws-fixture.ts'
import { binariesForTest, waitFor } from '../support/controlplane.ts'
import { startMoto } from '../support/moto.ts'
import { notification, startScenario } from '../support/scenario.ts'

const bins = await binariesForTest()

t.test('a machine rebooted through EC2 keeps its node cordoned until the node reports a new boot', { skip: bins.skip ?? false, timeout: 240_000 }, async t => {
  const moto = await startMoto()
  t.teardown(() => moto.stop())
  const ec2 = new EC2Client({ ...moto.clientConfig, maxAttempts: 1 })
  const zone = `${moto.clientConfig.region}a`
  const launched = await ec2.send(new RunInstancesCommand({ ImageId: AMI, MinCount: 1, MaxCount: 1, Placement: { AvailabilityZone: zone } }))
  const instance = launched.Instances![0]!.InstanceId!

  const s = await startScenario(bins.binDir!)
  t.teardown(() => s.stop())
  await s.nodes('app', 2)
  await s.cp.createFakeNodes([{ name: 'app-9', labels: { pool: 'app', 'topology.kubernetes.io/zone': 'zone-a' }, providerID: `aws:///${zone}/${instance}` }])
  const bootOf = async () => (await s.node('app-9')).status?.nodeInfo?.bootID
  const setBoot = (bootID: string) => s.cp.kubectl(['patch', 'node', 'app-9', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { nodeInfo: { bootID } } })])
  await setBoot('boot-before')
  await waitFor('the boot id recorded', async () => await bootOf() === 'boot-before', { timeoutMs: 10_000 })

  const controller = await s.controller('replica-a', {
    PROVIDER: 'aws',
    REMEDIATION_LADDER: 'reboot',
    AWS_REGION: moto.clientConfig.region,
    AWS_ENDPOINT_URL: moto.endpoint,
    AWS_ACCESS_KEY_ID: moto.clientConfig.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: moto.clientConfig.credentials.secretAccessKey
  })
  const answer = await controller.post('/v1/alerts', notification(['app-9']))
  t.match(answer.body.decisions, [{ node: 'app-9', action: 'remediate' }])

  await waitFor('app-9 waiting for its reboot', async () => await s.phase('app-9') === 'rebooting', { timeoutMs: 90_000 })
  t.match((await s.state('app-9')).reason, new RegExp(`provider aws: rebooted instance ${instance} .*for remediation .*; waiting until .* for the node to be Ready on a new boot`))
  // KWOK keeps the node Ready and heartbeating all along: Ready alone must not end the wait.
  await new Promise(resolve => setTimeout(resolve, 3000))
  t.equal(await s.phase('app-9'), 'rebooting', 'still waiting while the boot id is unchanged')
  t.equal((await s.node('app-9')).spec?.unschedulable, true, 'cordoned meanwhile')

  await setBoot('boot-after')
  await waitFor('app-9 back in service, verified', async () => await s.phase('app-9') === 'cooldown', { timeoutMs: 30_000 })
  const state = await s.state('app-9')
  t.same(state.history.map((h: { to: string }) => h.to).slice(-4), ['remediating', 'rebooting', 'verifying', 'cooldown'])
  t.match(state.history.at(-2).reason, /node Ready again on a new boot \(boot-after\)/)
  t.match(state.reason, /fix proven/)
  t.not((await s.node('app-9')).spec?.unschedulable, true, 'uncordoned once back')
})
