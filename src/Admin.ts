import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { Context, Effect, FiberSet, Layer } from "effect"
import type { HostPort } from "./Domain/Address.js"
import { errorBody, writeJson } from "./internal/JsonResponse.js"
import { formatAddressInfo, listen } from "./internal/Listen.js"
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

/** Serves the admin API on `address` until the scope closes. */
export const layerServer = (address: HostPort) =>
  Layer.scoped(
    AdminServer,
    Effect.gen(function* () {
      const shutdown = yield* Shutdown
      const table = routes(shutdown)
      const run = yield* FiberSet.makeRuntime<never>()
      const server = http.createServer((req, res) => {
        const path = (req.url ?? "/").split("?", 1)[0] as string
        const route = req.method === "GET" || req.method === "HEAD" ? table[path] : undefined
        if (route === undefined) return writeJson(res, 404, notFound.body)
        run(route(req).pipe(Effect.map((response) => writeJson(res, response.status, response.body))))
      })
      const bound = yield* listen(server, address, "admin")
      yield* Effect.logInfo("admin listening").pipe(
        Effect.annotateLogs({ subsystem: "admin", addr: formatAddressInfo(bound) }),
      )
      return AdminServer.of({ address: bound })
    }),
  )
