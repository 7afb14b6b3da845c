import * as net from "node:net"

/**
 * A minimal TCP load balancer for tests: each connection goes to the first backend that accepts it, so when a
 * draining node stops accepting, new connections (an agent's reconnect) land on the next node.
 */
export const startFailoverBalancer = async (
  backends: () => ReadonlyArray<number>,
): Promise<{ readonly port: number; readonly close: () => Promise<void> }> => {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    sockets.add(client)
    client.on("close", () => sockets.delete(client))
    client.pause()
    const tryBackend = (index: number) => {
      const port = backends()[index]
      if (port === undefined) return client.destroy()
      const backend = net.connect(port, "127.0.0.1")
      backend.once("error", () => tryBackend(index + 1))
      backend.once("connect", () => {
        sockets.add(backend)
        backend.removeAllListeners("error")
        backend.on("error", () => client.destroy())
        client.on("error", () => backend.destroy())
        backend.on("close", () => {
          sockets.delete(backend)
          client.destroy()
        })
        client.on("close", () => backend.destroy())
        client.pipe(backend)
        backend.pipe(client)
        client.resume()
      })
    }
    tryBackend(0)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
}
