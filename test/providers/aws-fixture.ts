import {
  CreateLaunchTemplateCommand,
  DescribeInstancesCommand,
  EC2Client,
  RunInstancesCommand
} from '@aws-sdk/client-ec2'
import {
  AutoScalingClient,
  CreateAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand
} from '@aws-sdk/client-auto-scaling'
import type { V1Node } from '@kubernetes/client-node'
import { startMoto } from '../support/moto.ts'
import type { Moto } from '../support/moto.ts'
import { startAwsProxy } from './aws-proxy.ts'
import type { AwsProxy } from './aws-proxy.ts'
import { createAwsProvider } from '../../src/providers/aws.ts'
import type { AwsProvider, AwsProviderOptions } from '../../src/providers/aws.ts'

/** An AMI id moto ships in its default image list. */
export const AMI = 'ami-03cf127a'
const ZONE = 'us-east-1a'

/**
 * moto_server plus the fault/counting proxy in front of it, and SDK clients that talk to moto directly
 * (so that test setup and inspection never show up in the proxy's call log).
 */
export type AwsWorld = {
  moto: Moto
  proxy: AwsProxy
  ec2: EC2Client
  autoscaling: AutoScalingClient
  /** A provider whose clients go through the proxy. */
  provider (options?: Omit<AwsProviderOptions, 'endpoint' | 'region' | 'credentials'>): AwsProvider
  createAsg (name: string, desired: number): Promise<string[]>
  runStandalone (): Promise<string>
  asg (name: string): Promise<{ desired: number, instances: Array<{ id: string, lifecycle: string }> }>
  instanceState (id: string): Promise<string>
  instanceTags (id: string): Promise<Map<string, string>>
  /** Drops all moto state and the proxy's log and faults. */
  reset (): Promise<void>
  close (): Promise<void>
}

let nodeCounter = 0
export function nodeFor (instanceId: string, zone = ZONE): V1Node {
  nodeCounter++
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: `ip-10-0-0-${nodeCounter}.ec2.internal` },
    spec: { providerID: `aws:///${zone}/${instanceId}` }
  }
}

export async function startAwsWorld (): Promise<AwsWorld> {
  const moto = await startMoto()
  let proxy: AwsProxy
  try {
    proxy = await startAwsProxy(moto.endpoint)
  } catch (err) {
    await moto.stop()
    throw err
  }
  const direct = { ...moto.clientConfig, maxAttempts: 1 }
  const ec2 = new EC2Client(direct)
  const autoscaling = new AutoScalingClient(direct)
  const providers: AwsProvider[] = []
  let templateCounter = 0

  const describeOne = async (id: string) => {
    const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))
    const instance = (out.Reservations ?? []).flatMap(r => r.Instances ?? []).find(i => i.InstanceId === id)
    if (instance === undefined) throw new Error(`moto does not know ${id}`)
    return instance
  }

  const world: AwsWorld = {
    moto,
    proxy,
    ec2,
    autoscaling,
    provider (options = {}) {
      const p = createAwsProvider({ ...options, endpoint: proxy.endpoint, region: moto.clientConfig.region, credentials: moto.clientConfig.credentials })
      providers.push(p)
      return p
    },
    async createAsg (name, desired) {
      templateCounter++
      const template = `lt-${name}-${templateCounter}`
      await ec2.send(new CreateLaunchTemplateCommand({ LaunchTemplateName: template, LaunchTemplateData: { ImageId: AMI, InstanceType: 't3.micro' } }))
      await autoscaling.send(new CreateAutoScalingGroupCommand({
        AutoScalingGroupName: name,
        LaunchTemplate: { LaunchTemplateName: template, Version: '$Latest' },
        MinSize: 0,
        MaxSize: desired + 2,
        DesiredCapacity: desired,
        AvailabilityZones: [ZONE],
        Tags: [{ Key: 'kubernetes.io/cluster/test', Value: 'owned', PropagateAtLaunch: true, ResourceId: name, ResourceType: 'auto-scaling-group' }]
      }))
      return (await world.asg(name)).instances.map(i => i.id)
    },
    async runStandalone () {
      const out = await ec2.send(new RunInstancesCommand({ ImageId: AMI, MinCount: 1, MaxCount: 1, InstanceType: 't3.micro', Placement: { AvailabilityZone: ZONE } }))
      const id = out.Instances?.[0]?.InstanceId
      if (id === undefined) throw new Error('RunInstances returned no instance')
      return id
    },
    async asg (name) {
      const out = await autoscaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] }))
      const group = out.AutoScalingGroups?.[0]
      if (group === undefined) throw new Error(`no ASG ${name}`)
      return {
        desired: group.DesiredCapacity ?? -1,
        instances: (group.Instances ?? []).map(i => ({ id: i.InstanceId ?? '', lifecycle: i.LifecycleState ?? '' }))
      }
    },
    async instanceState (id) {
      return (await describeOne(id)).State?.Name ?? 'unknown'
    },
    async instanceTags (id) {
      const tags = new Map<string, string>()
      for (const tag of (await describeOne(id)).Tags ?? []) tags.set(tag.Key ?? '', tag.Value ?? '')
      return tags
    },
    async reset () {
      await moto.reset()
      proxy.clearFaults()
      proxy.calls.length = 0
    },
    async close () {
      for (const p of providers) p.destroy()
      ec2.destroy()
      autoscaling.destroy()
      await proxy.close()
      await moto.stop()
    }
  }
  return world
}
