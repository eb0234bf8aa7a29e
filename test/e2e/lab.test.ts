// Smoke test of the lab (scripts/lab/run.ts): it starts, answers, and Ctrl-C leaves nothing
// behind. Needs the control plane binaries (like test/integration) and Prometheus/Alertmanager.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { binariesForTest } from '../support/controlplane.ts'
import { e2eSkip, repoRoot, waitUntil } from '../support/prometheus.ts'

const promSkip = e2eSkip()
const bins = promSkip === false ? await binariesForTest() : { skip: promSkip }

/** Processes whose command line or environment mentions one of these paths. */
function processesUsing (paths: string[]): string[] {
  const found: string[] = []
  for (const pid of fs.readdirSync('/proc').filter(p => /^\d+$/.test(p) && Number(p) !== process.pid)) {
    let text = ''
    try {
      text = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8') + fs.readFileSync(`/proc/${pid}/environ`, 'utf8')
    } catch {
      continue // gone, or not ours to read
    }
    if (paths.some(p => text.includes(p))) found.push(`${pid}: ${fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').slice(0, 120)}`)
  }
  return found
}

t.test('npm run lab: start, answer, stop on SIGINT with nothing left', { skip: bins.skip ?? false, timeout: 240_000 }, async t => {
  const lab = spawn(process.execPath, ['scripts/lab/run.ts', '--nodes', '3'], {
    cwd: repoRoot,
    // A plain environment: nothing of this test runner's (NODE_OPTIONS hooks) in the lab's children.
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...(process.env.CI ? { CI: process.env.CI } : {}) },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  lab.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
  lab.stderr.setEncoding('utf8').on('data', (d: string) => { err += d })
  const exited = new Promise<number | null>(resolve => lab.once('exit', code => resolve(code)))
  t.teardown(() => { lab.kill('SIGKILL') })

  await waitUntil('the lab banner', () => {
    if (lab.exitCode !== null) throw new Error(`the lab exited early (${lab.exitCode}):\n${err}`)
    return out.includes('Ctrl-C stops everything')
  }, { timeoutMs: 180_000, intervalMs: 500 }).catch(e => { throw new Error(`${(e as Error).message}\n--- stdout ---\n${out}\n--- stderr ---\n${err}`) })
  const value = (name: string) => new RegExp(`${name}=(\\S+)`).exec(out)?.[1]
  const service = value('SHC_LAB_SERVICE')!
  const token = value('SHC_LAB_TOKEN')!
  const exporter = value('SHC_LAB_EXPORTER')!
  const dirs = [...new Set(out.match(/\/tmp\/shc-(lab|monitoring|controlplane)-[A-Za-z0-9]+/g) ?? [])]
  t.comment(/cluster: +Kubernetes/.test(out) ? 'service on the KWOK cluster' : 'service on its simulated cluster (no Kubernetes backend in this build)')
  t.ok(dirs.length >= 2, `temp dirs named in the banner: ${dirs.join(' ')}`)

  const nodes = await fetch(`${service}/v1/nodes`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(nodes.status, 200)
  t.same(await nodes.json(), { nodes: [] }, 'nothing remediated yet')
  t.equal((await fetch(`${service}/v1/nodes`)).status, 401, 'the token is required')
  t.same(await (await fetch(`${exporter}/faults`)).json(), {})

  lab.kill('SIGINT')
  const code = await Promise.race([exited, new Promise<string>(resolve => setTimeout(() => resolve('timeout'), 30_000))])
  t.equal(code, 0, `exits 0 after SIGINT\n${err.split('\n').slice(-5).join('\n')}`)
  t.match(err, /stopped; every process ended/)
  // The watchdogs poll once a second: give them time to notice, then nothing may remain.
  await waitUntil('every process of the lab to be gone', () => processesUsing(dirs).length === 0, { timeoutMs: 10_000, intervalMs: 500 })
    .catch(() => {})
  t.same(processesUsing(dirs), [], 'no process refers to the lab\'s dirs')
  for (const dir of dirs) t.notOk(fs.existsSync(dir), `${path.basename(dir)} removed`)
})
