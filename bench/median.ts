/** The middle sample (the upper middle of an even count): robust to the odd slow run. */
export function median (samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}
