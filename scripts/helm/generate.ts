// Regenerates the parts of the Helm chart that come from elsewhere in the repository (see
// scripts/helm/chart.ts): the service options of src/config.ts become values, schema and the
// template's env table; the rule files, the Alertmanager route and the RBAC of deploy/ are
// carried over verbatim. After adding or changing an option in src/config.ts, run:
//
//   node scripts/helm/generate.ts            write the generated chart files
//   node scripts/helm/generate.ts --check    exit 1 if any is out of date (test/deploy/helm-generate.test.ts)
//   --root DIR                               repository root (default: this checkout)

import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateChartFiles } from './chart.ts'

const args = process.argv.slice(2)
const check = args.includes('--check')
const rootFlag = args.indexOf('--root')
const root = rootFlag >= 0 && args[rootFlag + 1] !== undefined
  ? resolve(args[rootFlag + 1] as string)
  : resolve(dirname(fileURLToPath(import.meta.url)), '../..')

let stale = 0
for (const { path, content } of await generateChartFiles(root)) {
  const target = join(root, path)
  if (check) {
    const current = await readFile(target, 'utf8').catch(() => null)
    if (current !== content) {
      console.error(`${path}: out of date; run node scripts/helm/generate.ts`)
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
