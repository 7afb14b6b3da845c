import type * as http from "node:http"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import * as Auth from "../src/Auth.js"
import * as Proxy from "../src/Proxy.js"
import { type ClusterNode, Registry } from "../src/Registry.js"
import * as Shutdown from "../src/Shutdown.js"
import { closedPort, request, startHttpServer } from "./support/http.js"
import { testLogger } from "./support/node.js"

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const peer = (id: string, port: number): ClusterNode => ({
  id,
  status: "active",
  proxyAddr: `127.0.0.1:${port}`,
  adminAddr: `127.0.0.1:${port}`,
  endpoints: new Map([["e", 1]]),
  tcpEndpoints: new Set(),
})

/** A proxy whose registry has no local upstream and offers `peers` in order, skipping the ones tried. */
const startProxy = async (peers: ReadonlyArray<ClusterNode>) => {
  const registry = Layer.succeed(
    Registry,
    Registry.of({
      register: () => Effect.void,
      kindOf: () => "http",
      pickLocal: () => undefined,
      pickRemote: (_endpointId, exclude) => peers.find((node) => !exclude.has(node.id)),
      clusterNodes: Effect.succeed(peers),
      localEndpoints: Effect.succeed(new Map()),
      goAwayAll: Effect.void,
      withdraw: Effect.void,
      routeChanged: Effect.never,
      routeExpected: () => false,
      markJoined: Effect.void,
      hasJoined: () => true,
    }),
  )
  const scope = await Effect.runPromise(Scope.make())
  const context = await Effect.runPromise(
    Layer.buildWithScope(
      Proxy.layerServer({ host: "127.0.0.1", port: 0 }).pipe(
        Layer.provide(Proxy.layer({ gatewayTimeout: 5000 })),
        Layer.provide(Layer.mergeAll(registry, Shutdown.layer, Auth.layerAllowAll, testLogger)),
      ),
      scope,
    ),
  )
  cleanups.push(() => Effect.runPromise(Scope.close(scope, Exit.void)))
  return `http://127.0.0.1:${Context.get(context, Proxy.ProxyServer).address.port}`
}

/** A peer that no longer has the endpoint: it answers as Pico does, and never reads a body it was not sent. */
const startStalePeer = async () => {
  const seen = { requests: 0, bodyBytes: 0, forwardHeader: "" }
  const stale = await startHttpServer((req, res) => {
    seen.requests++
    seen.forwardHeader = String(req.headers["x-pico-forward"])
    req.on("data", (chunk: Buffer) => {
      seen.bodyBytes += chunk.length
    })
    res.writeHead(503, { "content-type": "application/json", "x-pico-error": "endpoint not found" })
    res.end('{"error":"endpoint not found"}')
  })
  // Refuse at the Expect: 100-continue stage, as a Pico node without the endpoint does.
  stale.server.on("checkContinue", (req: http.IncomingMessage, res: http.ServerResponse) => {
    stale.server.emit("request", req, res)
  })
  cleanups.push(stale.close)
  return { port: stale.port, seen }
}

const startGoodPeer = async () => {
  const good = await startHttpServer((req, res) => {
    let body = ""
    req.on("data", (chunk: Buffer) => {
      body += chunk.toString()
    })
    req.on("end", () => res.end(`${req.method} ${body}`))
  })
  cleanups.push(good.close)
  return good.port
}

describe("routing to peer nodes", () => {
  it("moves on from a stale route to the next node", async () => {
    const stale = await startStalePeer()
    const proxyUrl = await startProxy([peer("stale", stale.port), peer("good", await startGoodPeer())])
    const response = await request(`${proxyUrl}/`, { headers: { "x-pico-endpoint": "e" } })
    expect([response.status, response.body]).toEqual([200, "GET "])
    expect(stale.seen.requests).toBe(1)
    expect(stale.seen.forwardHeader).toBe("true")
  })

  it("never spends a body on a stale route, so the next node gets all of it", async () => {
    const stale = await startStalePeer()
    const proxyUrl = await startProxy([peer("stale", stale.port), peer("good", await startGoodPeer())])
    const body = "x".repeat(100_000)
    const response = await request(`${proxyUrl}/`, {
      method: "POST",
      headers: { "x-pico-endpoint": "e" },
      body,
    })
    expect([response.status, response.body]).toEqual([200, `POST ${body}`])
    expect(stale.seen.bodyBytes).toBe(0)
  })

  it("skips a node that cannot be reached", async () => {
    const proxyUrl = await startProxy([peer("gone", await closedPort()), peer("good", await startGoodPeer())])
    const response = await request(`${proxyUrl}/`, {
      method: "POST",
      headers: { "x-pico-endpoint": "e" },
      body: "b",
    })
    expect([response.status, response.body]).toEqual([200, "POST b"])
  })

  it("answers 503 when every route turns out stale", async () => {
    const first = await startStalePeer()
    const second = await startStalePeer()
    const proxyUrl = await startProxy([peer("a", first.port), peer("b", second.port)])
    const response = await request(`${proxyUrl}/`, { headers: { "x-pico-endpoint": "e" } })
    expect([response.status, JSON.parse(response.body)]).toEqual([503, { error: "endpoint not found" }])
    expect(first.seen.requests + second.seen.requests).toBe(2)
  })
})
