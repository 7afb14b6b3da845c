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
  reason: Schema.Literal("address in use", "not permitted", "address unavailable", "failed"),
  listener: Schema.String,
  address: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect),
}) {}

const reasons: Record<string, ListenError["reason"]> = {
  EADDRINUSE: "address in use",
  EACCES: "not permitted",
  EADDRNOTAVAIL: "address unavailable",
}

/** The ListenError for `listener` failing to bind `address` with the system's `error`. */
export const listenError = (listener: string, address: HostPort, error: NodeJS.ErrnoException): ListenError =>
  new ListenError({
    reason: reasons[error.code ?? ""] ?? "failed",
    listener,
    address: formatHostPort(address),
    message: error.message,
    cause: error,
  })

/** "--gossip.bind-addr :8003: address already in use": the flag to change, its value, and why it failed. */
export const describeListenError = (error: ListenError): string =>
  `--${error.listener}.bind-addr ${error.address}: ${describeSystemError(error.message)}`

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
      const onError = (error: NodeJS.ErrnoException) =>
        resume(Effect.fail(listenError(listener, address, error)))
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
        if (server.listening) {
          server.close(() => resume(Effect.void))
          return
        }
        // Stopped accepting earlier (a drain): http.Server's close still stops its header-timeout checks, which
        // would otherwise run, and keep the server and everything it calls reachable, for good.
        server.close()
        resume(Effect.void)
      }),
  )

/** Formats a bound address for logs and status output. */
export const formatAddressInfo = (info: AddressInfo): string =>
  formatHostPort({ host: info.address, port: info.port })
