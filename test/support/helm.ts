/**
 * The tools of the Helm chart tests: the helm binary (scripts/helm/build.sh) and
 * prometheus-operator's CRDs (scripts/helm/operator-crds.sh), both built or fetched once into a
 * cache outside the repo; and `helm template` of the chart.
 *
 * Like the control plane (controlplane.ts binariesForTest): missing tools skip the tests with a
 * reason locally, and fail them under CI=true, where .ci/run provides them.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { stringify } from 'yaml'
import { parseManifests, run, type Manifest } from './manifests.ts'
import type { CommandResult } from './controlplane.ts'

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
export const chartDir = path.join(repoRoot, 'deploy', 'helm', 'self-healing-controller')

const isCI = () => /^(1|true|yes)$/i.test(process.env.CI ?? '')

/** Runs one of the scripts/helm tools and returns its last stdout line, or why it could not. */
function tool (script: string, what: string): { path: string, skip?: undefined } | { path?: undefined, skip: string } {
  // The first helm build takes a couple of minutes; its progress goes to our stderr.
  const res = spawnSync('bash', [path.join(repoRoot, 'scripts', 'helm', script)], { encoding: 'utf8', timeout: 30 * 60_000, stdio: ['ignore', 'pipe', 'inherit'] })
  const last = (res.stdout ?? '').trim().split('\n').pop() ?? ''
  if (res.status === 0 && last !== '') return { path: last }
  const reason = `${what} not available (bash scripts/helm/${script} exited ${res.status ?? res.error?.message}; it needs Go and the Go module proxy)`
  if (isCI()) throw new Error(`${reason}; under CI=true the chart tests must run`)
  return { skip: reason }
}

export const helmForTest = () => tool('build.sh', 'helm')
export const operatorCrdsForTest = () => tool('operator-crds.sh', 'prometheus-operator CRDs')

export type Rendered = CommandResult & { manifests: Manifest[] }

/**
 * `helm template RELEASE chart -n NAMESPACE` with the given values (written to a file, as a user
 * would pass them with -f) and extra arguments. Manifests are parsed only when it succeeded.
 */
export async function helmTemplate (helm: string, options: { release?: string, namespace?: string, values?: unknown, args?: string[] } = {}): Promise<Rendered> {
  const args = ['template', options.release ?? 'self-healing-controller', chartDir, '-n', options.namespace ?? 'self-healing-controller', ...(options.args ?? [])]
  let dir: string | undefined
  if (options.values !== undefined) {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shc-helm-values-'))
    const file = path.join(dir, 'values.yaml')
    fs.writeFileSync(file, stringify(options.values))
    args.push('-f', file)
  }
  try {
    const res = await run(helm, args)
    return { ...res, manifests: res.code === 0 ? parseManifests(res.stdout) : [] }
  } finally {
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
  }
}
