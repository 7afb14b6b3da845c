import * as net from "node:net"
import { Effect, type Scope } from "effect"
import type { HostPort } from "../Domain/Address.js"
import { type ListenError, listenError } from "../internal/Listen.js"

/**
 * A small TCP load balancer, like the one in front of a real cluster: each connection goes to the next backend
 * in turn, and a backend that refuses (a node restarting or draining) is skipped for the one after it. Working
 * at the TCP level, it carries HTTP, WebSockets and TLS alike. `listener` names the port it balances ("proxy"), for
 * errors.
 */
export const make = (
  listener: string,
  address: HostPort,
  backends: () => ReadonlyArray<HostPort>,
): Effect.Effect<net.AddressInfo, ListenError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ server: net.Server; sockets: Set<net.Socket> }, ListenError>((resume) => {
      const sockets = new Set<net.Socket>()
      let next = 0
      const track = (socket: net.Socket) => {
        sockets.add(socket)
        socket.once("close", () => sockets.delete(socket))
      }
      const server = net.createServer({ pauseOnConnect: true }, (client) => {
        track(client)
        client.on("error", () => client.destroy())
        const candidates = backends()
        const start = next++
        const tryBackend = (attempt: number) => {
          const backend = candidates[(start + attempt) % candidates.length]
          if (backend === undefined || attempt >= candidates.length || client.destroyed)
            return client.destroy()
          const upstream = net.connect(backend.port, backend.host)
          upstream.once("error", () => tryBackend(attempt + 1))
          upstream.once("connect", () => {
            track(upstream)
            upstream.removeAllListeners("error")
            upstream.on("error", () => client.destroy())
            upstream.on("close", () => client.destroy())
            client.on("close", () => upstream.destroy())
            client.pipe(upstream)
            upstream.pipe(client)
            client.resume()
          })
        }
        tryBackend(0)
      })
      server.once("error", (error) => resume(Effect.fail(listenError(listener, address, error))))
      server.listen(address.port, address.host === "" ? undefined : address.host, () =>
        resume(Effect.succeed({ server, sockets })),
      )
    }),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      }),
  ).pipe(Effect.map(({ server }) => server.address() as net.AddressInfo))
