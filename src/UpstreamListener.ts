import type * as http from "node:http"
import type { AddressInfo } from "node:net"
import type { Duplex } from "node:stream"
import { Context, Effect, FiberSet, Layer } from "effect"
import { Auth } from "./Auth.js"
import type { HostPort } from "./Domain/Address.js"
import { type EndpointId, endpointIdRule, isValidEndpointId } from "./Domain/EndpointId.js"
import { errorBody, writeJson, writeJsonToSocket } from "./internal/JsonResponse.js"
import { type ClientLimits, defaultClientLimits, makeListener } from "./internal/Listener.js"
import type { TlsFiles } from "./PicoConfig/KeyMaterial.js"
import { Registry } from "./Registry.js"
import { describeClose, Tunnel } from "./Tunnel.js"

/** The upstream port's listener, once bound. */
export class UpstreamServer extends Context.Tag("pico/UpstreamServer")<
  UpstreamServer,
  {
    readonly address: AddressInfo
    /** Stops taking new tunnels (a drain: agents then connect to another node); open sessions carry on. */
    readonly stopAccepting: Effect.Effect<void>
  }
>() {}

const listenerPrefix = "/pico/v1/listener/"

type Route = { readonly endpointId: EndpointId } | { readonly status: number; readonly body: Buffer }

const notFound = { status: 404, body: errorBody("not found") }
const invalidEndpointId = { status: 400, body: errorBody(`invalid endpoint id: must be ${endpointIdRule}`) }

/** `GET /pico/v1/listener/<endpoint id>` is the only route; anything else is answered before any upgrade. */
const route = (req: http.IncomingMessage): Route => {
  const url = req.url ?? ""
  if (req.method !== "GET" || !url.startsWith(listenerPrefix)) return notFound
  const query = url.indexOf("?")
  const endpointId = url.slice(listenerPrefix.length, query < 0 ? undefined : query)
  return isValidEndpointId(endpointId) ? { endpointId } : invalidEndpointId
}

const remoteAddress = (req: http.IncomingMessage): string => {
  const { remoteAddress: host = "", remotePort = 0 } = req.socket
  return host.includes(":") ? `[${host}]:${remotePort}` : `${host}:${remotePort}`
}

/**
 * Accepts upstream tunnels: authenticates the upgrade request, runs the session and registers it for its
 * endpoint until it closes (or its token expires).
 */
export const layerServer = (
  address: HostPort,
  tls?: TlsFiles,
  limits: ClientLimits = { ...defaultClientLimits, maxConnections: 16_384 },
) =>
  Layer.scoped(
    UpstreamServer,
    Effect.gen(function* () {
      const auth = yield* Auth
      const tunnel = yield* Tunnel
      const registry = yield* Registry
      const run = yield* FiberSet.makeRuntime<never>()

      const serveUpstream = (
        req: http.IncomingMessage,
        socket: Duplex,
        head: Buffer,
        endpointId: EndpointId,
      ) =>
        Effect.gen(function* () {
          const grant = yield* auth.upstream.authorize(req.headers.authorization, endpointId)
          // The session ends when the token does (GoAway first, so the agent learns why).
          const session = yield* tunnel.serve(req, socket, head, { expiresAt: grant.expiresAt })
          const remoteAddr = remoteAddress(req)
          yield* registry.register({ endpointId, remoteAddr, session })
          yield* Effect.logInfo("upstream connected").pipe(Effect.annotateLogs("addr", remoteAddr))
          const ended = yield* session.closed
          yield* Effect.logInfo("upstream disconnected").pipe(
            Effect.annotateLogs({ addr: remoteAddr, reason: describeClose(ended) }),
          )
        }).pipe(
          Effect.scoped,
          Effect.catchTag("AuthError", (error) =>
            Effect.logWarning("upstream refused").pipe(
              Effect.annotateLogs("reason", error.reason),
              Effect.zipRight(Effect.sync(() => writeJsonToSocket(socket, 401, errorBody(error.reason)))),
            ),
          ),
          // Not a WebSocket handshake: already answered with a 400.
          Effect.catchTag("TunnelError", (error) =>
            Effect.logWarning("upstream refused").pipe(Effect.annotateLogs("reason", error.message)),
          ),
          Effect.annotateLogs({ subsystem: "upstream", "endpoint-id": endpointId }),
        )

      const listener = yield* makeListener({ name: "upstream", address, tls, limits })
      const { server } = listener
      server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
        const target = route(req)
        if ("endpointId" in target) writeJson(res, 426, errorBody("expected a websocket upgrade"))
        else writeJson(res, target.status, target.body)
      })
      server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
        socket.on("error", () => socket.destroy())
        const target = route(req)
        if ("endpointId" in target) run(serveUpstream(req, socket, head, target.endpointId))
        else writeJsonToSocket(socket, target.status, target.body)
      })
      return UpstreamServer.of({ address: listener.address, stopAccepting: listener.stopAccepting })
    }),
  )
