/**
 * Reading rendered Kubernetes manifests in tests (the kustomize base, the Helm chart): run a
 * renderer, parse its multi-document output, pick one object, and flatten RBAC rules so two
 * sets of rules can be compared one permission at a time.
 */
import { execFile } from 'node:child_process'
import { parseAllDocuments } from 'yaml'
import type { V1Container, V1EnvVar, V1PolicyRule } from '@kubernetes/client-node'
import type { CommandResult } from './controlplane.ts'

export type Manifest = { apiVersion: string, kind: string, metadata: { name: string, namespace?: string, labels?: Record<string, string>, annotations?: Record<string, string> } }

/** Runs a command to completion, never throws; code -1 when it could not start or was killed. */
export function run (file: string, args: string[], timeoutMs = 60_000): Promise<CommandResult> {
  return new Promise(resolve => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1
      resolve({ stdout, stderr: err !== null && code === -1 ? `${stderr}${err.message}` : stderr, code })
    })
  })
}

export function parseManifests (text: string): Manifest[] {
  return parseAllDocuments(text).map(doc => {
    if (doc.errors.length > 0) throw doc.errors[0]
    return doc.toJS() as Manifest
  }).filter(m => m !== null)
}

/** `kubectl kustomize DIR`, parsed. */
export async function kustomize (kubectl: string, dir: string): Promise<Manifest[]> {
  const res = await run(kubectl, ['kustomize', dir])
  if (res.code !== 0) throw new Error(`kubectl kustomize ${dir} failed (${res.code}): ${res.stderr}`)
  return parseManifests(res.stdout)
}

/** The one object of this kind and name; failing loudly beats a test that checks nothing. */
export function pick<T> (manifests: Manifest[], kind: string, name: string): T {
  const found = manifests.filter(m => m.kind === kind && m.metadata.name === name)
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name}, found ${found.length}`)
  return found[0] as T
}

/** Every permission of a rule list as "group|resource|resourceName|verb" ('*' for any name), sorted. */
export function ruleKeys (rules: V1PolicyRule[] | undefined): string[] {
  const keys: string[] = []
  for (const rule of rules ?? []) {
    for (const group of rule.apiGroups ?? ['<none>']) {
      for (const resource of rule.resources ?? ['<none>']) {
        for (const name of rule.resourceNames ?? ['*']) {
          for (const verb of rule.verbs) keys.push(`${group}|${resource}|${name}|${verb}`)
        }
      }
    }
  }
  return keys.sort()
}

/** A message with the command's stderr appended when it said anything. */
export function said (message: string, res: CommandResult): string {
  const err = res.stderr.trim()
  return err === '' ? message : `${message}: ${err}`
}

export function envOf (container: V1Container, name: string): V1EnvVar | undefined {
  return container.env?.find(e => e.name === name)
}
