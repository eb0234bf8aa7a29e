/**
 * Asks Prometheus whether an alert is still firing for a node, right before a drain starts.
 * Any doubt (unreachable, error, unexpected answer) throws: the caller then does not drain.
 */
export type FiringCheck = (alertname: string, node: string) => Promise<boolean>

type QueryAnswer = { status: string, data?: { resultType: string, result: Array<{ metric: Record<string, string> }> } }

const quote = (value: string) => JSON.stringify(value)

export function createPrometheusCheck (baseUrl: string, nodeLabels: readonly string[], timeoutMs = 5000): FiringCheck {
  return async (alertname, node) => {
    const query = `ALERTS{alertstate="firing",alertname=${quote(alertname)}}`
    const url = new URL('/api/v1/query', baseUrl)
    url.searchParams.set('query', query)
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
    if (!response.ok) throw new Error(`Prometheus answered ${response.status} to ${query}`)
    const answer = await response.json() as QueryAnswer
    if (answer.status !== 'success' || answer.data?.resultType !== 'vector') throw new Error(`Prometheus gave an unexpected answer to ${query}`)
    return answer.data.result.some(series => nodeLabels.some(label => series.metric[label] === node))
  }
}
