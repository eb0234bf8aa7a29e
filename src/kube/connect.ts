import { hostname } from 'node:os'
import { KubeConfig } from '@kubernetes/client-node'
import type { Logger } from 'pino'
import { ConfigError, type ServiceConfig } from '../config.ts'
import { createKubeCluster, type KubeCluster } from './cluster.ts'
import { keptAnnotations } from './lean-node.ts'

/** The real cluster, explicitly chosen: a kubeconfig when given, in-cluster credentials otherwise. */
export async function connectKubernetes (config: ServiceConfig, log: Logger): Promise<{ cluster: KubeCluster, kubeConfig: KubeConfig, identity: string }> {
  const kubeConfig = new KubeConfig()
  if (config.kubeconfig === undefined && process.env.KUBERNETES_SERVICE_HOST === undefined) {
    throw new ConfigError('KUBECONFIG (--kubeconfig): not set, and not running in a pod (KUBERNETES_SERVICE_HOST is unset)')
  }
  try {
    if (config.kubeconfig !== undefined) kubeConfig.loadFromFile(config.kubeconfig)
    else kubeConfig.loadFromCluster()
  } catch (err) {
    throw new ConfigError(`KUBECONFIG (--kubeconfig): cannot load ${config.kubeconfig ?? 'in-cluster credentials'}: ${(err as Error).message}`)
  }
  if (kubeConfig.getCurrentCluster() === null) throw new ConfigError(`KUBECONFIG (--kubeconfig): ${config.kubeconfig} has no current context`)
  const identity = config.identity ?? hostname()
  log.info({ server: kubeConfig.getCurrentCluster()?.server, identity }, 'connecting to Kubernetes')
  const cluster = await createKubeCluster({
    kubeConfig,
    reportingController: `${config.annotationPrefix}/controller`,
    reportingInstance: identity,
    log,
    keepAnnotation: keptAnnotations(config.annotationPrefix),
    stateLease: { namespace: config.leaseNamespace, name: config.leaseName },
    writeLimit: { perSecond: config.writeQps, burst: config.writeBurst }
  })
  return { cluster, kubeConfig, identity }
}
