import t from 'tap'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { lintRulesCommand, LINT_USAGE } from '../../src/rules/lint-command.ts'

const here = dirname(fileURLToPath(import.meta.url))
const fixture = (name: string): string => join(here, 'fixtures', name)

async function run (files: string[], options = {}): Promise<{ code: number, lines: string[] }> {
  const lines: string[] = []
  const code = await lintRulesCommand(files, line => { lines.push(line) }, options)
  return { code, lines }
}

t.test('exit 0 and a summary when there are no findings', async t => {
  const { code, lines } = await run([fixture('good.rules.yml'), join(here, '..', '..', 'alert-rules', 'node-remediation.rules.yml')])
  t.equal(code, 0)
  t.same(lines, ['lint-rules: 2 file(s), no findings'])
})

t.test('exit 1 and one line per finding', async t => {
  const bad = fixture('bad-node-by.rules.yml')
  const { code, lines } = await run([fixture('good.rules.yml'), bad])
  t.equal(code, 1)
  t.same(lines, [
    `${bad}: group "bad": alert "BadRule": "max by (instance)" drops the node label; add node to by (...)`,
    'lint-rules: 1 finding(s) in 2 file(s)'
  ])
})

t.test('options reach the linter', async t => {
  const { code, lines } = await run([fixture('good.rules.yml')], { minWindow: '10m' })
  t.equal(code, 1)
  t.match(lines[0], /range window \[5m\] is shorter than the minimum 10m/)
})

t.test('exit 2 for unreadable files, invalid YAML and non-rule files; the rest is still linted', async t => {
  const missing = fixture('does-not-exist.yml')
  const bad = fixture('bad-no-guard.rules.yml')
  const { code, lines } = await run([missing, fixture('invalid-yaml.rules.yml'), fixture('not-a-rule-file.yml'), bad])
  t.equal(code, 2)
  t.equal(lines.length, 5)
  t.match(lines[0], `${missing}: cannot read: ENOENT`)
  t.match(lines[1], `${fixture('invalid-yaml.rules.yml')}: invalid YAML:`)
  t.match(lines[2], `${fixture('not-a-rule-file.yml')}: no "groups" key`)
  t.match(lines[3], `${bad}: group "bad": alert "BadRule": no sample-count guard`)
  t.equal(lines[4], 'lint-rules: 3 of 4 file(s) could not be linted, 1 finding(s)')
})

t.test('exit 2 and usage without files', async t => {
  const { code, lines } = await run([])
  t.equal(code, 2)
  t.same(lines, [LINT_USAGE])
})
