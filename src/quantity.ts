/**
 * Kubernetes resource quantities (`500m`, `1.5Gi`, `2e3`, `128974848`) as plain numbers in base
 * units. client-node's own parser is not part of its public API and rejects decimals with binary
 * suffixes; the capacity check needs only an estimate, so a float is precise enough.
 */
const suffixes: Record<string, number> = {
  n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60
}
const form = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:[eE]([+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$/

/** The quantity's value in base units; 0 when absent, NaN when unreadable. */
export function parseQuantity (text: string | undefined): number {
  if (text === undefined || text === '') return 0
  const match = form.exec(text.trim())
  if (match === null) return Number.NaN
  const value = Number(match[1])
  if (match[2] !== undefined) return value * 10 ** Number(match[2])
  return value * suffixes[match[3] ?? '']!
}
