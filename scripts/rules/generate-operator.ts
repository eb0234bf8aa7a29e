// Generates the prometheus-operator variants (PrometheusRule, AlertmanagerConfig)
// from the plain files, so they cannot drift.
//
//   node scripts/rules/generate-operator.ts            write deploy/prometheus-operator/*
//   node scripts/rules/generate-operator.ts --check    exit 1 if they are out of date
//   --root DIR                                          repository root (default: this checkout)

import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateOperatorManifests } from '../../src/rules/operator.ts'

const args = process.argv.slice(2)
const check = args.includes('--check')
const rootFlag = args.indexOf('--root')
const root = rootFlag >= 0 && args[rootFlag + 1] !== undefined
  ? resolve(args[rootFlag + 1] as string)
  : resolve(dirname(fileURLToPath(import.meta.url)), '../..')

const outputs = await generateOperatorManifests(root)
let stale = 0
for (const { path, content } of outputs) {
  const target = join(root, path)
  if (check) {
    const current = await readFile(target, 'utf8').catch(() => null)
    if (current !== content) {
      console.error(`${path}: out of date; run node scripts/rules/generate-operator.ts`)
      stale++
    } else {
      console.log(`${path}: up to date`)
    }
  } else {
    await mkdir(dirname(target), { recursive: true })
    await writeFile(target, content)
    console.log(`${path}: written`)
  }
}
process.exitCode = stale > 0 ? 1 : 0
