// The container image, as far as it can be checked without a Docker engine: the Dockerfile's
// essentials (read instruction by instruction, so dropping one fails here), the build context
// allow-list, and the production build itself — tsc really emits dist/, and the emitted
// JavaScript runs from the layout the final stage copies (package.json, dist/, and node_modules
// installed with `npm ci --omit=dev --ignore-scripts` as the prod-deps stage does) and answers
// /healthz.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { startController } from '../support/controller.ts'
import { waitFor } from '../support/controlplane.ts'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

type Instruction = { keyword: string, args: string, line: number }
type Stage = { from: string, name: string | undefined, instructions: Instruction[] }

/** Dockerfile instructions with continuation lines joined and comments dropped. */
function instructions (text: string): Instruction[] {
  const out: Instruction[] = []
  let pending: { text: string, line: number } | undefined
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim()
    if (pending === undefined && (line === '' || line.startsWith('#'))) return
    if (pending !== undefined && line.startsWith('#')) return
    const joined = pending === undefined ? { text: line, line: i + 1 } : { text: `${pending.text} ${line}`, line: pending.line }
    if (joined.text.endsWith('\\')) {
      pending = { text: joined.text.slice(0, -1).trimEnd(), line: joined.line }
      return
    }
    pending = undefined
    const match = /^(\S+)\s*(.*)$/.exec(joined.text)
    if (match !== null) out.push({ keyword: (match[1] ?? '').toUpperCase(), args: match[2] ?? '', line: joined.line })
  })
  return out
}

function stages (list: Instruction[]): Stage[] {
  const out: Stage[] = []
  for (const ins of list) {
    if (ins.keyword === 'FROM') {
      const [from = '', as, name] = ins.args.split(/\s+/).filter(w => !w.startsWith('--'))
      out.push({ from, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] })
    } else {
      out.at(-1)?.instructions.push(ins)
    }
  }
  return out
}

const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')
const all = stages(instructions(dockerfile))
const final = all.at(-1)
const byName = (name: string) => all.find(s => s.name === name)
const runs = (stage: Stage | undefined) => (stage?.instructions ?? []).filter(i => i.keyword === 'RUN').map(i => i.args)
const lastOf = (stage: Stage | undefined, keyword: string) => stage?.instructions.filter(i => i.keyword === keyword).at(-1)

t.test('Dockerfile: multi-stage, built on Node 24', async t => {
  t.ok(all.length >= 3, `build, prod-deps and final stages (found ${all.length})`)
  const build = byName('build')
  const deps = byName('prod-deps')
  t.match(build?.from, /^node:24[.-]/, 'build stage on a Node 24 image')
  t.match(deps?.from, /^node:24[.-]/, 'prod-deps stage on a Node 24 image')
  t.ok(runs(build).some(r => /\bnpm ci\b/.test(r) && !/--omit=dev/.test(r)), 'build stage installs all dependencies with npm ci (TypeScript is a devDependency)')
  t.ok(runs(build).some(r => /tsc -p tsconfig\.build\.json/.test(r)), 'build stage compiles with tsconfig.build.json')
  t.ok(runs(deps).some(r => /\bnpm ci\b.*--omit=dev/.test(r)), 'prod-deps stage: npm ci --omit=dev')
  // `npm install` would ignore the lock file's exact versions.
  t.notOk(all.flatMap(runs).some(r => /\bnpm (install|i)\b/.test(r)), 'no npm install anywhere')
})

t.test('Dockerfile: the final stage is distroless Node 24, nonroot, exec-form entrypoint', async t => {
  t.match(final?.from, /^gcr\.io\/distroless\/nodejs24-debian1[23](:|@|$)/, 'distroless Node 24 base')
  t.equal(runs(final).length, 0, 'no RUN: the image has no shell to run it')
  t.notMatch(JSON.stringify(final?.instructions ?? []), /\bnpm\b/, 'no npm in the final stage')

  const copies = (final?.instructions ?? []).filter(i => i.keyword === 'COPY').map(i => i.args)
  t.ok(copies.some(c => /--from=prod-deps\b.*\bnode_modules\b/.test(c)), 'node_modules from prod-deps (no devDependencies)')
  t.notOk(copies.some(c => /--from=build\b.*\bnode_modules\b/.test(c)), 'never the build stage\'s node_modules')
  t.ok(copies.some(c => /--from=build\b.*\bdist\b/.test(c)), 'dist/ from the build stage')
  t.ok(copies.some(c => /^package\.json\b/.test(c)), 'package.json, for "type": "module"')
  t.notOk(copies.some(c => /(^|\s)(src|test)\b/.test(c) && !c.includes('--from')), 'no sources or tests')

  t.match(lastOf(final, 'USER')?.args, /^(65532|nonroot)(:(65532|nonroot))?$/, 'USER nonroot (65532)')
  const env = (final?.instructions ?? []).filter(i => i.keyword === 'ENV').map(i => i.args).join(' ')
  t.match(env, /\bNODE_ENV=production\b/, 'NODE_ENV=production')
  t.match(lastOf(final, 'EXPOSE')?.args, /^8080(\/tcp)?$/, 'EXPOSE 8080')

  // Exec form (a JSON array): node is PID 1 and gets SIGTERM; the shell form needs a shell.
  const entrypoint = lastOf(final, 'ENTRYPOINT')?.args ?? ''
  let argv: unknown
  try {
    argv = JSON.parse(entrypoint)
  } catch {
    argv = undefined
  }
  t.ok(Array.isArray(argv), `ENTRYPOINT in exec form: ${entrypoint}`)
  t.equal((argv as string[] | undefined)?.at(-1), '/app/dist/cli.js', 'runs the compiled CLI')
  t.equal(lastOf(final, 'CMD'), undefined, 'no CMD to append arguments by surprise')
})

t.test('Dockerfile agrees with the Deployment on the user and the port', async t => {
  const deployment = fs.readFileSync(path.join(ROOT, 'deploy', 'base', 'deployment.yaml'), 'utf8')
  t.match(deployment, /runAsUser: 65532/, 'the Deployment runs as the image\'s nonroot uid')
  t.match(deployment, /containerPort: 8080/, 'and expects the exposed port')
})

t.test('.dockerignore: an allow-list that admits exactly what the Dockerfile copies', async t => {
  const patterns = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
  t.equal(patterns[0], '*', 'everything excluded first')
  const allowed = patterns.filter(p => p.startsWith('!')).map(p => p.slice(1).replace(/\/$/, ''))
  const sources = all.flatMap(s => s.instructions)
    .filter(i => i.keyword === 'COPY' && !i.args.includes('--from'))
    .flatMap(i => i.args.split(/\s+/).filter(w => !w.startsWith('--')).slice(0, -1))
    .map(s => s.replace(/\/$/, ''))
  for (const source of new Set(sources)) t.ok(allowed.includes(source), `${source} is in the build context`)
  for (const secretish of ['.git', 'node_modules', 'dist', 'test', '.tap', '.lab', 'deploy']) {
    t.notOk(allowed.includes(secretish), `${secretish} stays out of the build context`)
  }
})

t.test('tsconfig.build.json: emits src/ only, with .ts imports rewritten', async t => {
  const config = JSON.parse(fs.readFileSync(path.join(ROOT, 'tsconfig.build.json'), 'utf8')) as { extends?: string, compilerOptions?: Record<string, unknown>, include?: string[] }
  t.equal(config.extends, './tsconfig.json', 'same strictness as the type-check')
  t.equal(config.compilerOptions?.noEmit, false)
  t.equal(config.compilerOptions?.rewriteRelativeImportExtensions, true)
  t.equal(config.compilerOptions?.outDir, 'dist')
  t.equal(config.compilerOptions?.rootDir, 'src', 'dist/cli.js, not dist/src/cli.js')
  t.same(config.include, ['src/**/*.ts'], 'no tests, benches or scripts in the build')
})

// tap's process tracking puts its loader into every child's NODE_OPTIONS, whatever env the child
// is given; tsc's own entry point cannot load under it. `env -u` takes it out again, so tsc and
// the built CLI run as they would outside the test.
function run (file: string, args: string[], options: { cwd?: string, env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise(resolve => {
    execFile('env', ['-u', 'NODE_OPTIONS', file, ...args], { timeout: 120_000, maxBuffer: 16 * 1024 * 1024, ...options }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr: err !== null && stderr === '' ? err.message : stderr })
    })
  })
}

function filesUnder (dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter(f => fs.statSync(path.join(dir, f)).isFile())
}

t.test('the production build runs as the image runs it: only production dependencies, /healthz answers', { timeout: 180_000 }, async t => {
  // The final stage's layout, outside the repo: package.json + node_modules + dist/, with
  // node_modules installed as the prod-deps stage installs it (no devDependencies, no scripts:
  // postinstall would run `tap build`, a devDependency).
  const app = fs.mkdtempSync(path.join(os.tmpdir(), 'shc-image-'))
  t.teardown(() => fs.rmSync(app, { recursive: true, force: true }))
  for (const file of ['package.json', 'package-lock.json', '.npmrc']) fs.copyFileSync(path.join(ROOT, file), path.join(app, file))
  const deps = await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app })
  t.equal(deps.code, 0, `npm ci --omit=dev ${deps.stderr}`.trim())
  if (deps.code !== 0) return
  // The lock file marks what only devDependencies need ("dev": true); none of it may be there.
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> }
  const installed = (where: string) => fs.existsSync(path.join(app, where, 'package.json'))
  const devOnly = Object.entries(lock.packages).filter(([where, p]) => where !== '' && p.dev === true).map(([where]) => where)
  t.ok(devOnly.some(where => where === 'node_modules/typescript') && devOnly.some(where => where === 'node_modules/tap'), 'the lock file marks the dev tools')
  t.same(devOnly.filter(installed), [], 'nothing only devDependencies need is installed')
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
  t.same(Object.keys(pkg.dependencies).filter(d => !installed(`node_modules/${d}`)), [], 'every dependency is installed')
  const dist = path.join(app, 'dist')

  const tsc = await run(path.join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', dist], { cwd: ROOT })
  t.equal(tsc.code, 0, `tsc -p tsconfig.build.json ${tsc.stdout}${tsc.stderr}`.trim())
  if (tsc.code !== 0) return

  const files = filesUnder(dist)
  const sources = filesUnder(path.join(ROOT, 'src')).filter(f => f.endsWith('.ts'))
  t.same(files.filter(f => f.endsWith('.js')).sort(), sources.map(f => f.replace(/\.ts$/, '.js')).sort(), 'one .js per source file, nothing else')
  t.notOk(files.some(f => f.endsWith('.ts')), 'no .ts copied into dist')
  const unrewritten = files.filter(f => f.endsWith('.js') && /(from\s+|import\s*\(\s*)['"]\.{1,2}\/[^'"]*\.ts['"]/.test(fs.readFileSync(path.join(dist, f), 'utf8')))
  t.same(unrewritten, [], 'every relative .ts import became .js')

  // Static imports load the whole module graph before --help prints; lint-rules goes through
  // the one dynamic import.
  const env = { PATH: process.env.PATH ?? '', NODE_ENV: 'production' }
  const help = await run(process.execPath, [path.join(dist, 'cli.js'), '--help'], { cwd: app, env })
  t.equal(help.code, 0, `dist/cli.js --help ${help.stderr}`.trim())
  t.match(help.stdout, /^Usage: self-healing-controller/, 'prints the usage')
  t.match(help.stdout, /WEBHOOK_TOKEN_FILE/, 'lists the options')
  // An empty rule file: this checks the module loads, not what the linter thinks of our rules.
  const rules = path.join(app, 'empty.rules.yml')
  fs.writeFileSync(rules, 'groups: []\n')
  const lint = await run(process.execPath, [path.join(dist, 'cli.js'), 'lint-rules', rules], { cwd: app, env })
  t.equal(lint.code, 0, `dist/cli.js lint-rules ${lint.stderr}`.trim())
  t.match(lint.stdout, /lint-rules: 1 file\(s\)/, 'the dynamically imported linter ran')

  // And it serves: the simulated cluster needs no API server, so this is the image's program
  // answering its liveness probe, with nothing but its production dependencies.
  const server = await startController('image', app, { ...env, CLUSTER: 'sim', LOG_LEVEL: 'info' }, { cli: path.join(dist, 'cli.js'), untracked: true })
  t.teardown(() => server.kill('SIGTERM'))
  const health = await server.get('/healthz')
  t.equal(health.status, 200, 'GET /healthz')
  if (health.status !== 200) t.comment(server.logs().slice(-2000))
  t.same(health.body, { status: 'ok' })
  const ready = await waitFor('/readyz 200', async () => (await server.get('/readyz')).status === 200)
  t.ok(ready, 'ready on the simulated cluster')
  await server.kill('SIGTERM')
})
