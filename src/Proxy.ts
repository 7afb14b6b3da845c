import * as http from "node:http"
import type { AddressInfo } from "node:net"
import type { Duplex } from "node:stream"
import { Context, Effect, FiberSet, Layer } from "effect"
import type { HostPort } from "./Domain/Address.js"
import { formatAddressInfo, listen, stopAccepting } from "./internal/Listen.js"
import { endpointIdFromHeaders } from "./Proxy/EndpointId.js"
import { ProxyError, writeError, writeErrorToSocket } from "./Proxy/Errors.js"
import { forwardRequest, forwardUpgrade } from "./Proxy/Forward.js"
import { Registry } from "./Registry.js"
import { Shutdown } from "./Shutdown.js"
import type { TunnelStream } from "./Tunnel.js"

export { ProxyError, type ProxyFailure } from "./Proxy/Errors.js"

/**
 * Routes proxy-client requests to upstreams: resolves the endpoint id, picks an upstream and streams the exchange
 * through its tunnel. Failures are answered with a JSON `{"error": ...}` body, never thrown.
 */
export class Proxy extends Context.Tag("pico/Proxy")<
  Proxy,
  {
    readonly handle: (req: http.IncomingMessage, res: http.ServerResponse) => Effect.Effect<void>
    readonly handleUpgrade: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => Effect.Effect<void>
  }
>() {}

export interface ProxyOptions {
  /** Milliseconds to wait for an upstream's response headers before answering 504. */
  readonly gatewayTimeout: number
}

/** The proxy port's listener, once bound. */
export class ProxyServer extends Context.Tag("pico/ProxyServer")<
  ProxyServer,
  { readonly address: AddressInfo }
>() {}

const logFailure = (error: ProxyError, endpointId: string | undefined) =>
  (error.reason === "upstream unreachable" || error.reason === "endpoint timeout"
    ? Effect.logWarning("proxy request failed")
    : Effect.logDebug("proxy request refused")
  ).pipe(
    Effect.annotateLogs({
      subsystem: "proxy",
      reason: error.reason,
      ...(endpointId === undefined ? {} : { "endpoint-id": endpointId }),
      ...(error.detail === undefined ? {} : { detail: error.detail }),
    }),
  )

export const make = (options: ProxyOptions) =>
  Effect.gen(function* () {
    const registry = yield* Registry
    const shutdown = yield* Shutdown
    const forwardOptions = {
      gatewayTimeout: options.gatewayTimeout,
      proto: "http",
      closeConnection: shutdown.isDraining,
    } as const

    /** Opens a stream to a local upstream, skipping any whose session closed since it was picked. */
    const openLocalStream = (endpointId: string): Effect.Effect<TunnelStream, ProxyError> =>
      Effect.suspend(() => {
        for (;;) {
          const upstream = registry.pickLocal(endpointId)
          if (upstream === undefined) return Effect.fail(new ProxyError({ reason: "endpoint not found" }))
          try {
            return Effect.succeed(upstream.tunnel.openStream())
          } catch {
            // Closed between pick and open: pickLocal will not offer it again.
          }
        }
      })

    const resolveEndpoint = (req: http.IncomingMessage): Effect.Effect<string, ProxyError> => {
      const endpointId = endpointIdFromHeaders(req.headers)
      return endpointId === undefined
        ? Effect.fail(new ProxyError({ reason: "missing pico endpoint id" }))
        : Effect.succeed(endpointId)
    }

    const answerFailure = (error: ProxyError, endpointId: string | undefined, res: http.ServerResponse) =>
      logFailure(error, endpointId).pipe(Effect.zipRight(Effect.sync(() => writeError(res, error.reason))))

    // The hot path: kept to one fiber and no per-request log annotations (those are added only on failure).
    const handle = (req: http.IncomingMessage, res: http.ServerResponse): Effect.Effect<void> => {
      res.once("close", shutdown.begin())
      const endpointId = endpointIdFromHeaders(req.headers)
      if (endpointId === undefined) {
        return answerFailure(new ProxyError({ reason: "missing pico endpoint id" }), endpointId, res)
      }
      const upstream = registry.pickLocal(endpointId)
      if (upstream === undefined)
        return answerFailure(new ProxyError({ reason: "endpoint not found" }), endpointId, res)
      return Effect.catchAll(forwardRequest(upstream.httpAgent, req, res, forwardOptions), (error) =>
        answerFailure(error, endpointId, res),
      )
    }

    const handleUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer) =>
      resolveEndpoint(req).pipe(
        Effect.flatMap(openLocalStream),
        Effect.map((stream) => forwardUpgrade(stream, req, socket, head, "http")),
        Effect.catchAll((error) => Effect.sync(() => writeErrorToSocket(socket, error.reason))),
        Effect.annotateLogs("subsystem", "proxy"),
      )

    return Proxy.of({ handle, handleUpgrade })
  })

export const layer = (options: ProxyOptions): Layer.Layer<Proxy, never, Registry | Shutdown> =>
  Layer.effect(Proxy, make(options))

/** Serves the proxy on `address` until the scope closes; stops accepting connections when the node drains. */
export const layerServer = (address: HostPort) =>
  Layer.scoped(
    ProxyServer,
    Effect.gen(function* () {
      const proxy = yield* Proxy
      const shutdown = yield* Shutdown
      const run = yield* FiberSet.makeRuntime<never>()
      // No request timeout: a proxied download may legitimately stream for hours.
      const server = http.createServer({ requestTimeout: 0 })
      server.on("request", (req, res) => run(proxy.handle(req, res)))
      server.on("upgrade", (req, socket: Duplex, head: Buffer) => run(proxy.handleUpgrade(req, socket, head)))
      server.on("clientError", (_error, socket: Duplex) => socket.destroy())
      const bound = yield* listen(server, address, "proxy")
      yield* shutdown.onDrain(stopAccepting(server))
      yield* Effect.logInfo("proxy listening").pipe(
        Effect.annotateLogs({ subsystem: "proxy", addr: formatAddressInfo(bound) }),
      )
      return ProxyServer.of({ address: bound })
    }),
  )
