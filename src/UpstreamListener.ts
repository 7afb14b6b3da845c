import type * as http from "node:http"
import type { AddressInfo } from "node:net"
import type { Duplex } from "node:stream"
import { Context, Effect, ExecutionStrategy, Exit, FiberSet, Layer, Scope } from "effect"
import { Auth } from "./Auth.js"
import { type HostPort, peerAddress } from "./Domain/Address.js"
import { type EndpointId, endpointIdRule, isValidEndpointId } from "./Domain/EndpointId.js"
import { type EndpointKind, isEndpointKind, kindParameter } from "./Domain/EndpointKind.js"
import { errorBody, writeJson, writeJsonToSocket } from "./internal/JsonResponse.js"
import { type ClientLimits, defaultClientLimits, makeListener } from "./internal/Listener.js"
import { upstreamHeader } from "./internal/Router.js"
import type { TlsFiles } from "./PicoConfig/KeyMaterial.js"
import { Registry } from "./Registry.js"
import { type CloseReason, describeClose, Tunnel } from "./Tunnel.js"

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

type Route =
  | { readonly endpointId: EndpointId; readonly kind: EndpointKind }
  | { readonly status: number; readonly body: Buffer }

const notFound = { status: 404, body: errorBody("not found") }
const upstreamMark = { [upstreamHeader]: "1" }
const invalidEndpointId = { status: 400, body: errorBody(`invalid endpoint id: must be ${endpointIdRule}`) }
const invalidKind = { status: 400, body: errorBody("invalid endpoint kind: expected http or tcp") }

/**
 * `GET /pico/v1/listener/<endpoint id>[?kind=tcp]` is the only route; anything else is answered before any
 * upgrade. Without `kind` the endpoint is HTTP, as it was for agents that predate kinds.
 */
const route = (req: http.IncomingMessage): Route => {
  const url = req.url ?? ""
  if (req.method !== "GET" || !url.startsWith(listenerPrefix)) return notFound
  const query = url.indexOf("?")
  const endpointId = url.slice(listenerPrefix.length, query < 0 ? undefined : query)
  if (!isValidEndpointId(endpointId)) return invalidEndpointId
  const kind = query < 0 ? null : new URLSearchParams(url.slice(query + 1)).get(kindParameter)
  if (kind === null) return { endpointId, kind: "http" }
  return isEndpointKind(kind) ? { endpointId, kind } : invalidKind
}

/** An endpoint id means one thing: an agent registering it as the other kind is refused (409; it retries later). */
const kindConflict = (endpointId: EndpointId, known: EndpointKind): string =>
  `endpoint ${endpointId} is already connected as ${known}`

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
      const listenerScope = yield* Effect.scope

      const serveUpstream = (
        req: http.IncomingMessage,
        socket: Duplex,
        head: Buffer,
        endpointId: EndpointId,
        kind: EndpointKind,
      ) => {
        // Annotated per line, not around the fiber: that fiber lives as long as the session, and an annotation
        // around it would copy its fiber state once per session.
        const log = (line: Effect.Effect<void>, annotations: Record<string, unknown>) =>
          Effect.annotateLogs(line, { subsystem: "upstream", "endpoint-id": endpointId, ...annotations })
        return Effect.gen(function* () {
          const grant = yield* auth.upstream.authorize(req.headers.authorization, endpointId)
          const known = registry.kindOf(endpointId)
          if (known !== undefined && known !== kind) {
            const reason = kindConflict(endpointId, known)
            yield* log(Effect.logWarning("upstream refused"), { reason })
            return writeJsonToSocket(socket, 409, errorBody(reason))
          }
          // What lives as long as the session (its heartbeat, its registration) lives in a scope of its own,
          // closed when the session closes or the listener stops: no fiber waits out each session.
          const scope = yield* Scope.fork(listenerScope, ExecutionStrategy.sequential)
          const remoteAddr = peerAddress(req.socket)
          // An agent that broke the protocol is worth an operator's attention; an agent leaving is not.
          const disconnected = (ended: CloseReason) =>
            log(
              ended._tag === "ProtocolError"
                ? Effect.logWarning("upstream disconnected")
                : Effect.logInfo("upstream disconnected"),
              {
                addr: remoteAddr,
                reason: describeClose(ended),
              },
            ).pipe(Effect.zipRight(Scope.close(scope, Exit.void)))
          yield* Effect.gen(function* () {
            // The session ends when the token does (GoAway first, so the agent learns why).
            const session = yield* tunnel.serve(req, socket, head, { expiresAt: grant.expiresAt })
            yield* registry.register({ endpointId, kind, remoteAddr, session })
            yield* log(Effect.logInfo("upstream connected"), { addr: remoteAddr, kind })
            session.whenClosed((ended) => run(disconnected(ended)))
          }).pipe(
            Scope.extend(scope),
            Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause))),
          )
        }).pipe(
          Effect.catchTag("AuthError", (error) =>
            log(Effect.logWarning("upstream refused"), { reason: error.reason }).pipe(
              Effect.zipRight(Effect.sync(() => writeJsonToSocket(socket, 401, errorBody(error.reason)))),
            ),
          ),
          // Not a WebSocket handshake: already answered with a 400.
          Effect.catchTag("TunnelError", (error) =>
            log(Effect.logWarning("upstream refused"), { reason: error.message }),
          ),
        )
      }

      const listener = yield* makeListener({ name: "upstream", address, tls, limits })
      const { server } = listener
      server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
        const target = route(req)
        if ("endpointId" in target) writeJson(res, 426, errorBody("expected a websocket upgrade"))
        else writeJson(res, target.status, target.body, upstreamMark)
      })
      server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
        socket.on("error", () => socket.destroy())
        const target = route(req)
        if ("endpointId" in target) run(serveUpstream(req, socket, head, target.endpointId, target.kind))
        else writeJsonToSocket(socket, target.status, target.body, upstreamMark)
      })
      return UpstreamServer.of({ address: listener.address, stopAccepting: listener.stopAccepting })
    }),
  )
