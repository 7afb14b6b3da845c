import type * as http from "node:http"
import type { AddressInfo } from "node:net"
import { Context, Effect, FiberSet, Layer } from "effect"
import { Auth, type AuthError } from "./Auth.js"
import type { HostPort } from "./Domain/Address.js"
import { makeHttpServer } from "./internal/HttpServer.js"
import { errorBody, writeJson } from "./internal/JsonResponse.js"
import { formatAddressInfo, listen } from "./internal/Listen.js"
import type { TlsFiles } from "./PicoConfig/KeyMaterial.js"
import { Shutdown } from "./Shutdown.js"

/** The admin port's listener, once bound. */
export class AdminServer extends Context.Tag("pico/AdminServer")<
  AdminServer,
  { readonly address: AddressInfo }
>() {}

interface AdminResponse {
  readonly status: number
  readonly body: Buffer
}

type Route = (req: http.IncomingMessage) => Effect.Effect<AdminResponse>

const json = (status: number, value: unknown): AdminResponse => ({
  status,
  body: Buffer.from(JSON.stringify(value)),
})
const ok = json(200, { status: "ok" })
const notFound: AdminResponse = { status: 404, body: errorBody("not found") }
const draining: AdminResponse = { status: 503, body: errorBody("shutting down") }

/**
 * Health (the process is up) and readiness (it wants traffic): readiness turns 503 as soon as shutdown starts,
 * so a load balancer stops sending new work while in-flight requests finish.
 */
const routes = (shutdown: Shutdown["Type"]): Record<string, Route> => ({
  "/health": () => Effect.succeed(ok),
  "/ready": () => Effect.sync(() => (shutdown.isDraining() ? draining : ok)),
})

/** Probes must work without credentials, whatever the admin port requires. */
const openPaths = new Set(["/health", "/ready"])

/** Serves the admin API on `address` until the scope closes. */
export const layerServer = (address: HostPort, tls?: TlsFiles) =>
  Layer.scoped(
    AdminServer,
    Effect.gen(function* () {
      const shutdown = yield* Shutdown
      const guard = (yield* Auth).admin
      const table = routes(shutdown)
      const run = yield* FiberSet.makeRuntime<never>()

      const authorized = (req: http.IncomingMessage, path: string): Effect.Effect<void, AuthError> =>
        guard === undefined || openPaths.has(path)
          ? Effect.void
          : Effect.asVoid(guard.authorize(req.headers.authorization))

      const server = yield* makeHttpServer(tls, {}, "admin")
      server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
        const path = (req.url ?? "/").split("?", 1)[0] as string
        const route = req.method === "GET" || req.method === "HEAD" ? table[path] : undefined
        // Credentials come before routing, so an unauthenticated caller cannot map which routes exist.
        run(
          authorized(req, path).pipe(
            Effect.zipRight(route === undefined ? Effect.succeed(notFound) : route(req)),
            Effect.map((response) => writeJson(res, response.status, response.body)),
            Effect.catchTag("AuthError", (error) =>
              Effect.logWarning("admin request unauthorized").pipe(
                Effect.annotateLogs({ subsystem: "admin", reason: error.reason }),
                Effect.zipRight(Effect.sync(() => writeJson(res, 401, errorBody(error.reason)))),
              ),
            ),
          ),
        )
      })
      const bound = yield* listen(server, address, "admin")
      yield* Effect.logInfo("admin listening").pipe(
        Effect.annotateLogs({ subsystem: "admin", addr: formatAddressInfo(bound) }),
      )
      return AdminServer.of({ address: bound })
    }),
  )
