import * as http from "node:http"
import { Context, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  Admin,
  Agent,
  Auth,
  EndpointId,
  Gossip,
  Proxy,
  Registry,
  Shutdown,
  Tunnel,
  UpstreamListener,
} from "../src/index.js"
import { request, waitFor } from "./support/http.js"
import { testLogger } from "./support/node.js"

// The composition docs/library.md shows: a node built from the layers, with the application's own Auth.
const onlyPublicEndpoints = Layer.succeed(
  Auth.Auth,
  Auth.Auth.of({
    upstream: {
      authorize: (_authorization, endpointId) =>
        endpointId?.startsWith("public-") === true
          ? Effect.succeed({ expiresAt: undefined })
          : Effect.fail(new Auth.AuthError({ reason: "endpoint not permitted" })),
    },
    proxy: undefined, // proxy and admin ports open
    admin: undefined,
  }),
)

const heartbeat = { interval: 10_000, timeout: 10_000 }
const loopback = { host: "127.0.0.1", port: 0 }

const node = Layer.mergeAll(
  Proxy.layerServer(loopback),
  UpstreamListener.layerServer(loopback),
  Admin.layerServer(loopback),
).pipe(
  Layer.provide(Proxy.layer({ gatewayTimeout: 15_000 })),
  Layer.provideMerge(
    Layer.mergeAll(Registry.layer, Shutdown.layer, Tunnel.layer(heartbeat), onlyPublicEndpoints),
  ),
  Layer.provideMerge(Gossip.layerSingleNode()),
)

let scope: Scope.CloseableScope
let context: Context.Context<Proxy.ProxyServer | UpstreamListener.UpstreamServer | Registry.Registry>
let embedded: Fiber.RuntimeFiber<never, Agent.AgentError>

beforeAll(async () => {
  scope = await Effect.runPromise(Scope.make())
  context = await Effect.runPromise(Layer.buildWithScope(node.pipe(Layer.provide(testLogger)), scope))
  // An HTTP server that never listens: the embedded agent hands it tunnel streams directly.
  const app = http.createServer((req, res) => res.end(`inside the app: ${req.url}`))
  const upstreamPort = Context.get(context, UpstreamListener.UpstreamServer).address.port
  embedded = Effect.runFork(
    Agent.run({
      serverUrl: `http://127.0.0.1:${upstreamPort}`,
      endpoints: [{ id: EndpointId("public-app"), server: app }],
      forwardTimeout: 10_000,
      healthyAfter: 10_000,
    }).pipe(Effect.provide(Tunnel.layer(heartbeat)), Effect.provide(testLogger)),
  )
})

afterAll(async () => {
  await Effect.runPromise(Fiber.interrupt(embedded))
  await Effect.runPromise(Scope.close(scope, Exit.void))
})

describe("Pico as a library", () => {
  it("serves an in-process HTTP server through a node composed from layers with its own Auth", async () => {
    const registry = Context.get(context, Registry.Registry)
    await waitFor("embedded agent registered", async () =>
      (await Effect.runPromise(registry.localEndpoints)).has(EndpointId("public-app")),
    )
    const proxyPort = Context.get(context, Proxy.ProxyServer).address.port
    const response = await request(`http://127.0.0.1:${proxyPort}/hello`, {
      headers: { "x-pico-endpoint": "public-app" },
    })
    expect(response.status).toBe(200)
    expect(response.body).toBe("inside the app: /hello")
  })

  it("lets the custom Auth refuse an endpoint", async () => {
    const refused = await Effect.runPromise(
      Agent.run({
        serverUrl: `http://127.0.0.1:${Context.get(context, UpstreamListener.UpstreamServer).address.port}`,
        endpoints: [{ id: EndpointId("private-app"), host: "127.0.0.1", port: 1 }],
        forwardTimeout: 10_000,
        healthyAfter: 10_000,
      }).pipe(Effect.provide(Tunnel.layer(heartbeat)), Effect.provide(testLogger), Effect.flip),
    )
    expect(refused.message).toBe("server refused the connection: endpoint not permitted")
  })
})
