import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { Context, Effect, FiberSet, Layer } from "effect"
import type { HostPort } from "./Domain/Address.js"
import { formatAddressInfo, type ListenError, listen } from "./internal/Listen.js"
import { json, makeRouter } from "./internal/Router.js"
import { makeMetricsRoute } from "./Metrics/Route.js"
import * as Metrics from "./Metrics.js"

/** The agent's admin listener, once bound. */
export class AgentAdminServer extends Context.Tag("pico/AgentAdminServer")<
  AgentAdminServer,
  { readonly address: AddressInfo }
>() {}

const ok = json(200, { status: "ok" })

/**
 * The agent's admin port: `/health` and `/metrics` (per-endpoint forwarding and the process), until the scope
 * closes. Bind it to a distinct port per agent on a host.
 */
export const layerServer = (address: HostPort): Layer.Layer<AgentAdminServer, ListenError> =>
  Layer.scoped(
    AgentAdminServer,
    Effect.gen(function* () {
      const route = makeRouter({
        "/health": () => Effect.succeed(ok),
        "/metrics": yield* makeMetricsRoute(Metrics.agentFamilies),
      })
      const run = yield* FiberSet.makeRuntime<never>()
      const server = http.createServer((req, res) =>
        run(route(req, res, (req.url ?? "/").split("?", 1)[0] as string)),
      )
      const bound = yield* listen(server, address, "admin")
      yield* Effect.logInfo("admin listening").pipe(
        Effect.annotateLogs({ subsystem: "admin", addr: formatAddressInfo(bound) }),
      )
      return AgentAdminServer.of({ address: bound })
    }),
  )
