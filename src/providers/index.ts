import type { KubeConfig } from '@kubernetes/client-node'
import type { ServiceConfig } from '../config.ts'
import { createAwsProvider } from './aws.ts'
import { createClusterApiProvider } from './clusterapi.ts'
import { createKarpenterProvider } from './karpenter.ts'
import { noneProvider } from './none.ts'
import type { Provider } from './provider.ts'

/** The provider the configuration names. The simulated cluster brings its own (`sim`). */
export function createProvider (config: ServiceConfig, kubeConfig: KubeConfig | undefined): Provider {
  switch (config.provider) {
    case 'none':
      return noneProvider
    case 'aws':
      return createAwsProvider({
        ...(config.awsRegion === undefined ? {} : { region: config.awsRegion }),
        allowReplaceOutsideAsg: config.awsAllowReplaceOutsideAsg
      })
    case 'clusterapi':
    case 'karpenter':
      if (kubeConfig === undefined) throw new Error(`PROVIDER=${config.provider} needs CLUSTER=kubernetes`)
      return config.provider === 'clusterapi' ? createClusterApiProvider({ kubeConfig }) : createKarpenterProvider({ kubeConfig })
    case 'sim':
      throw new Error('the sim provider comes with the simulated cluster')
  }
}
