import type * as http from "node:http"
import type { AddressInfo } from "node:net"
import { Context, Effect, FiberSet, Layer } from "effect"
import type { HostPort } from "./Domain/Address.js"
import type { ListenError } from "./internal/Listen.js"
import { defaultClientLimits, makeListener } from "./internal/Listener.js"
import { json, makeRouter } from "./internal/Router.js"
import { makeMetricsRoute } from "./Metrics/Route.js"
import * as Metrics from "./Metrics.js"
import type { ConfigError } from "./PicoConfig/ConfigError.js"

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
export const layerServer = (address: HostPort): Layer.Layer<AgentAdminServer, ListenError | ConfigError> =>
  Layer.scoped(
    AgentAdminServer,
    Effect.gen(function* () {
      const route = makeRouter({
        "/health": () => Effect.succeed(ok),
        "/metrics": yield* makeMetricsRoute(Metrics.agentFamilies),
      })
      const run = yield* FiberSet.makeRuntime<never>()
      // The listener skeleton every port shares: timeouts and a connection cap for a port few should use.
      const listener = yield* makeListener({
        name: "admin",
        address,
        tls: undefined,
        limits: { ...defaultClientLimits, maxConnections: 64 },
      })
      listener.server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) =>
        run(route(req, res, (req.url ?? "/").split("?", 1)[0] as string)),
      )
      return AgentAdminServer.of({ address: listener.address })
    }),
  )
