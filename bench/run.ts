import { benchDrain } from './drain.ts'
import { benchBurst, benchHttp } from './http.ts'
import { benchTriage } from './triage.ts'

/** `npm run bench`: every speed target, measured side by side with its baseline in one run. */
const only = process.argv[2]
const sections: Record<string, () => unknown> = {
  triage: () => benchTriage(),
  http: () => benchHttp(),
  burst: () => benchBurst(),
  drain: () => benchDrain()
}
let failed = false
for (const [name, run] of Object.entries(sections)) {
  if (only !== undefined && only !== name) continue
  const result = await run() as { pass: boolean, ratio: number }
  failed ||= !result.pass
  console.log(JSON.stringify({ ...result, ratio: Number(result.ratio.toFixed(3)) }, null, 2))
}
process.exitCode = failed ? 1 : 0
