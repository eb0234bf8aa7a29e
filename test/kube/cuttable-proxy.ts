import net from 'node:net'

/**
 * A TCP proxy in front of the API server that a test can cut (connections reset, new ones
 * refused) and restore on the same port: a network outage without stopping the control plane.
 * It can also delay every byte sent to the server by `delayMs` (order kept): a slow API server.
 * TLS passes through untouched; the serving certificate names 127.0.0.1, as the proxy does.
 */
export type CuttableProxy = {
  readonly url: string
  cut (): Promise<void>
  restore (): Promise<void>
  close (): Promise<void>
}

function listen (server: net.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject)
      resolve((server.address() as net.AddressInfo).port)
    })
  })
}

export async function startCuttableProxy (target: URL, options: { delayMs?: number } = {}): Promise<CuttableProxy> {
  const sockets = new Set<net.Socket>()
  const delayMs = options.delayMs ?? 0
  const server = net.createServer(client => {
    const upstream = net.connect(Number(target.port), target.hostname)
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
      socket.on('error', () => { client.destroy(); upstream.destroy() })
    }
    upstream.pipe(client)
    if (delayMs === 0) {
      client.pipe(upstream)
    } else {
      // Each chunk waits its turn: later chunks never overtake earlier ones.
      let last = Promise.resolve()
      client.on('data', chunk => {
        last = last.then(() => new Promise(resolve => setTimeout(resolve, delayMs))).then(() => { if (!upstream.destroyed) upstream.write(chunk) })
      })
      client.on('end', () => { void last.then(() => upstream.end()) })
    }
  })
  const port = await listen(server, 0)
  const cut = async () => {
    const closed = new Promise(resolve => server.close(resolve))
    for (const socket of sockets) socket.resetAndDestroy()
    await closed
  }
  return {
    url: `https://127.0.0.1:${port}`,
    cut,
    async restore () { await listen(server, port) },
    async close () { if (server.listening) await cut() }
  }
}
