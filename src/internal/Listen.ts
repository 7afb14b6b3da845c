import type { AddressInfo, Server } from "node:net"
import { Effect, Schema, type Scope } from "effect"
import { formatHostPort, type HostPort } from "../Domain/Address.js"
import type { HttpServer } from "./HttpServer.js"
import { describeSystemError } from "./SystemError.js"

/**
 * A listener could not bind its address (in use, not permitted, no such interface). `listener` names its port
 * ("proxy", "gossip", ...), whose address is set by `--<listener>.bind-addr`.
 */
export class ListenError extends Schema.TaggedError<ListenError>()("ListenError", {
  listener: Schema.String,
  address: Schema.String,
  message: Schema.String,
}) {}

/** "--gossip.bind-addr :8003: address already in use": the flag to change, its value, and why it failed. */
export const describeListenError = (error: ListenError): string =>
  `--${error.listener}.bind-addr ${error.address}: ${describeSystemError(error.message)}`

/** Stops accepting new connections; those already open carry on. Safe to call more than once. */
export const stopAccepting = (server: HttpServer): Effect.Effect<void> =>
  Effect.sync(() => {
    if (server.listening) server.close()
    server.closeIdleConnections()
  })

/**
 * Binds `server` for the lifetime of the scope and returns the bound address (port 0 becomes the real port).
 * On release, an HTTP server's connections still open are cut: the graceful part of shutdown happens before this
 * (a plain TCP server's owner cuts its own before).
 */
export const listen = (
  server: HttpServer | Server,
  address: HostPort,
  listener: string,
): Effect.Effect<AddressInfo, ListenError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<AddressInfo, ListenError>((resume) => {
      const onError = (error: Error) =>
        resume(
          Effect.fail(
            new ListenError({ listener, address: formatHostPort(address), message: error.message }),
          ),
        )
      server.once("error", onError)
      const onListening = () => {
        server.off("error", onError)
        resume(Effect.succeed(server.address() as AddressInfo))
      }
      if (address.host === "") server.listen(address.port, onListening)
      else server.listen(address.port, address.host, onListening)
    }),
    () =>
      Effect.async<void>((resume) => {
        if ("closeAllConnections" in server) server.closeAllConnections()
        if (!server.listening) return resume(Effect.void)
        server.close(() => resume(Effect.void))
      }),
  )

/** Formats a bound address for logs and status output. */
export const formatAddressInfo = (info: AddressInfo): string =>
  formatHostPort({ host: info.address, port: info.port })
