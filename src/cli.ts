#!/usr/bin/env node
/**
 * Entry point: `self-healing-controller [options]` serves; `… lint-rules FILE...` lints;
 * `… status` shows the fleet. Each loads only its own modules: status and lint-rules need no
 * cluster client.
 */
const [command, ...rest] = process.argv.slice(2)
if (command === 'lint-rules') {
  const { lintRulesCommand } = await import('./rules/lint-command.ts')
  process.exitCode = await lintRulesCommand(rest, line => console.log(line))
} else if (command === 'status') {
  const { statusCommand, colorWanted } = await import('./status/command.ts')
  process.exitCode = await statusCommand(rest, {
    out: line => console.log(line),
    err: line => console.error(line),
    env: process.env,
    color: colorWanted(process.stdout, process.env),
    now: Date.now
  })
} else {
  const { main } = await import('./main.ts')
  process.exitCode = await main(process.argv.slice(2), process.env)
}
