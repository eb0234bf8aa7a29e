#!/usr/bin/env node
import { main } from './main.ts'

/** Entry point: `self-healing-controller [options]` serves; `self-healing-controller lint-rules FILE...` lints. */
const [command, ...rest] = process.argv.slice(2)
if (command === 'lint-rules') {
  const { lintRulesCommand } = await import('./rules/lint-command.ts')
  process.exitCode = await lintRulesCommand(rest, line => console.log(line))
} else {
  process.exitCode = await main(process.argv.slice(2), process.env)
}
