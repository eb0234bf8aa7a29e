/**
 * Alertmanager as the source of truth (ALERTMANAGER_URL): its v2 API lists every alert it holds,
 * with whether it is active or suppressed (silenced or inhibited). Webhooks say nothing of
 * silences — Alertmanager sends no resolve for an alert that becomes silenced — so this is how an
 * operator's silence becomes a "stop". Any doubt (unreachable, an unexpected answer) throws: the
 * caller then starts no drain.
 */
export type AlertmanagerState = 'active' | 'suppressed'

/** Alertmanager's alerts by episode (fingerprint and start, in epoch ms): what it believes now. */
export type AlertmanagerView = ReadonlyMap<string, AlertmanagerState>

export type AlertmanagerSource = () => Promise<AlertmanagerView>

export const episodeKey = (fingerprint: string, startsAtMs: number) => `${fingerprint}@${startsAtMs}`

type ApiAlert = { fingerprint?: unknown, startsAt?: unknown, status?: { state?: unknown, silencedBy?: unknown, inhibitedBy?: unknown } }

export function createAlertmanagerSource (baseUrl: string, timeoutMs = 5000): AlertmanagerSource {
  return async () => {
    const url = new URL('/api/v2/alerts', baseUrl)
    for (const flag of ['active', 'silenced', 'inhibited', 'unprocessed']) url.searchParams.set(flag, 'true')
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
    if (!response.ok) throw new Error(`Alertmanager answered ${response.status} to GET /api/v2/alerts`)
    const body = await response.json() as unknown
    if (!Array.isArray(body)) throw new Error('Alertmanager gave an unexpected answer to GET /api/v2/alerts')
    const view = new Map<string, AlertmanagerState>()
    for (const alert of body as ApiAlert[]) {
      const startsAt = typeof alert.startsAt === 'string' ? Date.parse(alert.startsAt) : Number.NaN
      if (typeof alert.fingerprint !== 'string' || Number.isNaN(startsAt)) throw new Error('Alertmanager listed an alert without fingerprint or startsAt')
      const suppressed = alert.status?.state === 'suppressed' ||
        (Array.isArray(alert.status?.silencedBy) && alert.status.silencedBy.length > 0) ||
        (Array.isArray(alert.status?.inhibitedBy) && alert.status.inhibitedBy.length > 0)
      view.set(episodeKey(alert.fingerprint, startsAt), suppressed ? 'suppressed' : 'active')
    }
    return view
  }
}
