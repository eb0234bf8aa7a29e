// The Prometheus/Alertmanager harness without starting them: the generated configurations, and
// the process plumbing that must leave nothing behind, even when its owner is SIGKILLed.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { parse as parseYaml } from 'yaml'
import {
  alertmanagerConfig, alertmanagerConfigFile, binaries, launch, makeTempDir, prometheusConfig, removeTempDir, repoRoot,
  sleep, waitUntil
} from '../support/prometheus.ts'

const available = (bin: string) => spawnSync(bin, ['--version']).error === undefined

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

t.test('Alertmanager config: the project\'s file with only URL, token file and timings changed', async t => {
  const text = alertmanagerConfig({ webhookUrl: 'http://127.0.0.1:20001/v1/alerts', tokenFile: '/tmp/x/token', factor: 30 })
  const generated = parseYaml(text)
  const original = parseYaml(fs.readFileSync(alertmanagerConfigFile, 'utf8'))
  const route = generated.route.routes[0]
  t.same([route.group_wait, route.group_interval, route.repeat_interval], ['1s', '10s', '2m'], '30s, 5m, 1h ÷ 30')
  const webhook = generated.receivers.find((r: { name: string }) => r.name === 'self-healing-controller').webhook_configs[0]
  t.equal(webhook.url, 'http://127.0.0.1:20001/v1/alerts')
  t.equal(webhook.http_config.authorization.credentials_file, '/tmp/x/token')
  t.equal(webhook.http_config.authorization.type, 'Bearer')
  // Put the original values back: nothing else may differ.
  Object.assign(route, { group_wait: '30s', group_interval: '5m', repeat_interval: '1h' })
  const originalWebhook = original.receivers.find((r: { name: string }) => r.name === 'self-healing-controller').webhook_configs[0]
  webhook.url = originalWebhook.url
  webhook.http_config.authorization.credentials_file = originalWebhook.http_config.authorization.credentials_file
  t.same(generated, original)

  const overridden = parseYaml(alertmanagerConfig({ webhookUrl: 'http://x/v1/alerts', tokenFile: '/t', factor: 30, timings: { group_interval: '2s' } }))
  t.equal(overridden.route.routes[0].group_interval, '2s', 'an override wins')

  if (available(binaries.amtool)) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shc-amconfig-'))
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
    fs.writeFileSync(path.join(dir, 'am.yml'), text)
    const r = spawnSync(binaries.amtool, ['check-config', path.join(dir, 'am.yml')], { encoding: 'utf8' })
    t.equal(r.status, 0, `amtool check-config: ${r.stdout}${r.stderr}`)
  }
})

t.test('Prometheus config: a target per node and job, labelled node=<name>', async t => {
  const config = parseYaml(prometheusConfig({
    exporterAddress: '127.0.0.1:20002',
    nodes: ['worker-1', 'worker-2'],
    alertmanagerAddress: '127.0.0.1:20003',
    ruleFiles: [],
    scrapeInterval: '1s',
    evaluationInterval: '1s'
  }))
  t.same(config.global, { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' })
  t.same(config.scrape_configs.map((j: { job_name: string }) => j.job_name), ['node-exporter', 'app'])
  t.same(config.scrape_configs[0].static_configs[1], {
    targets: ['127.0.0.1:20002'],
    labels: { node: 'worker-2', __metrics_path__: '/nodes/worker-2/metrics/node' }
  })
  t.same(config.alerting.alertmanagers[0].static_configs[0].targets, ['127.0.0.1:20003'])
})

t.test('launch + stop: the whole process group goes', async t => {
  const dir = makeTempDir('shc-harness-test-')
  // A shell with a child of its own: stop() must take both.
  const daemon = launch('sh', 'sh', ['-c', 'sleep 300 & echo $! > child.pid; wait'], { logPath: path.join(dir, 'log'), cwd: dir })
  const childPid = await waitUntil('the grandchild pid', () => {
    const text = fs.existsSync(path.join(dir, 'child.pid')) ? fs.readFileSync(path.join(dir, 'child.pid'), 'utf8').trim() : ''
    return text === '' ? undefined : Number(text)
  }, { timeoutMs: 5000, intervalMs: 50 })
  t.ok(alive(childPid))
  await daemon.stop(2000)
  t.ok(daemon.exited, `exited: ${daemon.exited}`)
  await waitUntil('the grandchild to die', () => !alive(childPid), { timeoutMs: 3000, intervalMs: 50 })
  removeTempDir(dir)
  t.notOk(fs.existsSync(dir), 'temp dir removed')
})

t.test('an owner killed with SIGKILL leaves nothing behind (the watchdog)', async t => {
  // A separate Node process uses the harness, reports its daemon's pid and temp dir, and is then
  // SIGKILLed: no exit hook runs, only the watchdog can clean up.
  const script = `
    import { launch, makeTempDir } from ${JSON.stringify(path.join(repoRoot, 'test', 'support', 'prometheus.ts'))}
    import path from 'node:path'
    const dir = makeTempDir('shc-orphan-test-')
    const d = launch('sleeper', 'sleep', ['300'], { logPath: path.join(dir, 'log') })
    console.log(JSON.stringify({ pid: d.pid, dir }))
    setInterval(() => {}, 1000)
  `
  const owner = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env: { PATH: process.env.PATH, HOME: process.env.HOME } })
  t.teardown(() => { owner.kill('SIGKILL') })
  const report = await new Promise<{ pid: number, dir: string }>((resolve, reject) => {
    let out = ''
    owner.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!))
    })
    owner.once('exit', code => reject(new Error(`owner exited early with ${code}`)))
    setTimeout(() => reject(new Error('owner did not report in 20s')), 20_000).unref()
  })
  t.ok(alive(report.pid), 'the daemon runs')
  t.ok(fs.existsSync(report.dir), 'the temp dir exists')
  owner.kill('SIGKILL')
  await waitUntil('the daemon to be killed', () => !alive(report.pid), { timeoutMs: 10_000, intervalMs: 100 })
  await waitUntil('the temp dir to be removed', () => !fs.existsSync(report.dir), { timeoutMs: 5000, intervalMs: 100 })
  // The watchdog exits after its cleanup; none may still be watching the dead owner.
  await sleep(1500)
  const leftovers = fs.readdirSync('/proc').filter(pid => /^\d+$/.test(pid)).filter(pid => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`shc-harness-watchdog\0${owner.pid}\0`)
    } catch {
      return false
    }
  })
  t.same(leftovers, [], 'the watchdog itself is gone')
})
