/** Durations such as `30m`, `1h30m`, `45s`, `250ms` — the form operators write in Prometheus and Kubernetes. */
const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const whole = /^(?:\d+(?:ms|s|m|h|d))+$/
const part = /(\d+)(ms|s|m|h|d)/g

/** Milliseconds, or undefined when the text is not a duration. `0` alone is accepted. */
export function parseDuration (text: string): number | undefined {
  const trimmed = text.trim()
  if (trimmed === '0') return 0
  if (!whole.test(trimmed)) return undefined
  let total = 0
  for (const [, amount, unit] of trimmed.matchAll(part)) total += Number(amount) * units[unit!]!
  return total
}

export function formatDuration (ms: number): string {
  if (ms === 0) return '0s'
  if (ms % 1000 !== 0) return `${ms}ms`
  let rest = ms / 1000
  let out = ''
  for (const [unit, size] of [['h', 3600], ['m', 60], ['s', 1]] as const) {
    const n = Math.floor(rest / size)
    if (n > 0) out += `${n}${unit}`
    rest -= n * size
  }
  return out
}
