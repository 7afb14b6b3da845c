import * as http from "node:http"
import type { AddressInfo, Socket } from "node:net"
import type { Duplex } from "node:stream"
import { Context, Duration, Effect, FiberSet, Layer } from "effect"
import { makeCaptureRoutes } from "./Admin/Captures.js"
import { consoleRoutes } from "./Admin/Console.js"
import { makeForward } from "./Admin/Forward.js"
import { makeNodeMetricsRoute } from "./Admin/Metrics.js"
import { makePeers } from "./Admin/Peers.js"
import { makeStatusRoutes } from "./Admin/Status.js"
import { Auth, type AuthError } from "./Auth.js"
import type { HostPort } from "./Domain/Address.js"
import { Gossip } from "./Gossip.js"
import {
  type ClientLimits,
  defaultClientLimits,
  makeListener,
  owesEarlierResponse,
} from "./internal/Listener.js"
import { type Handler, json, jsonError, makeRouter, write } from "./internal/Router.js"
import type { TlsFiles } from "./PicoConfig/KeyMaterial.js"
import { Registry } from "./Registry.js"
import { Shutdown } from "./Shutdown.js"

/** The admin port's listener, once bound. */
export class AdminServer extends Context.Tag("pico/AdminServer")<
  AdminServer,
  { readonly address: AddressInfo }
>() {}

const ok = json(200, { status: "ok" })
const joining = jsonError(503, "joining the cluster")
const draining = jsonError(503, "shutting down")

/**
 * Health (the process is up) and readiness (it wants traffic): readiness turns 200 once the node has joined its
 * cluster and knows the routes, and 503 again as soon as shutdown starts, so a load balancer sends new work only
 * while the node can serve it.
 */
const probeRoutes = (shutdown: Shutdown["Type"], registry: Registry["Type"]): Record<string, Handler> => ({
  "/health": () => Effect.succeed(ok),
  "/ready": () => Effect.sync(() => (shutdown.isDraining() ? draining : registry.hasJoined() ? ok : joining)),
})

/**
 * Probes must work without credentials, whatever the admin port requires; so does the console's page, which
 * holds no data: it asks for the token, and everything it shows comes from the API, which requires it.
 */
const openPaths = new Set(["/health", "/ready", ...Object.keys(consoleRoutes)])

/** The path and the query of a request target ("/status/cluster/nodes?forward=pico-2"). */
const parseTarget = (url: string): { readonly path: string; readonly query: URLSearchParams } => {
  const query = url.indexOf("?")
  return query < 0
    ? { path: url, query: new URLSearchParams() }
    : { path: url.slice(0, query), query: new URLSearchParams(url.slice(query + 1)) }
}

export interface AdminOptions {
  readonly limits?: ClientLimits
  /** How long a `?forward=` request waits for the other node's response headers; default 15 s. */
  readonly forwardTimeout?: Duration.DurationInput
  /** Bytes of a replay's response body its answer keeps; default 32 KiB, as a capture keeps of each body. */
  readonly replayBodyBytes?: number
}

/**
 * Serves the admin API on `address` until the scope closes: probes, `/metrics`, the status routes, and
 * `?forward=<node id>` on any of them to run it on another node.
 */
export const layerServer = (address: HostPort, tls?: TlsFiles, options: AdminOptions = {}) =>
  Layer.scoped(
    AdminServer,
    Effect.gen(function* () {
      const shutdown = yield* Shutdown
      const gossip = yield* Gossip
      const guard = (yield* Auth).admin
      const peerOptions = {
        tls: tls !== undefined,
        timeout: Duration.toMillis(options.forwardTimeout ?? "15 seconds"),
        requiresToken: guard !== undefined,
      }
      const route = makeRouter({
        ...probeRoutes(shutdown, yield* Registry),
        ...(yield* makeStatusRoutes),
        ...(yield* makeCaptureRoutes(yield* makePeers(peerOptions), options.replayBodyBytes ?? 32 * 1024)),
        ...consoleRoutes,
        "/metrics": yield* makeNodeMetricsRoute,
      })
      const forward = yield* makeForward(peerOptions)
      const run = yield* FiberSet.makeRuntime<never>()

      const authorized = (req: http.IncomingMessage, path: string): Effect.Effect<void, AuthError> =>
        guard === undefined || openPaths.has(path)
          ? Effect.void
          : Effect.asVoid(guard.authorize(req.headers.authorization))

      const listener = yield* makeListener({
        name: "admin",
        address,
        tls,
        limits: options.limits ?? { ...defaultClientLimits, maxConnections: 1024 },
      })
      const handle = (req: http.IncomingMessage, res: http.ServerResponse) => {
        const { path, query } = parseTarget(req.url ?? "/")
        const nodeId = query.get("forward")
        const local = nodeId === null || nodeId === "" || nodeId === gossip.nodeId
        // Credentials come before routing, so an unauthenticated caller cannot map which routes (or nodes) exist.
        run(
          authorized(req, path).pipe(
            Effect.zipRight(local ? route(req, res, path, query) : forward(req, res, nodeId)),
            Effect.catchTag("AuthError", (error) =>
              Effect.logWarning("admin request unauthorized").pipe(
                Effect.annotateLogs({ subsystem: "admin", reason: error.reason }),
                Effect.zipRight(Effect.sync(() => write(res, jsonError(401, error.reason)))),
              ),
            ),
          ),
        )
      }
      listener.server.on("request", handle)
      // The admin API has no WebSocket routes, but Node hands an upgrade request only to "upgrade" listeners (the
      // connection guard has one), so it would never be answered: answer it as a request instead, on a response
      // bound to the raw connection, which closes after it. An agent pointed here then hears a 404 at once.
      listener.server.on("upgrade", (req: http.IncomingMessage, socket: Duplex) => {
        if (owesEarlierResponse(socket)) return void socket.destroy()
        socket.on("error", () => socket.destroy())
        const res = new http.ServerResponse(req)
        res.shouldKeepAlive = false
        res.assignSocket(socket as Socket)
        res.once("finish", () => {
          res.detachSocket(socket as Socket)
          socket.end()
        })
        handle(req, res)
      })
      return AdminServer.of({ address: listener.address })
    }),
  )
