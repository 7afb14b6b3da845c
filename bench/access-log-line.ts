// What one access log line costs to format and batch, alone (bench/README.md, "Where a sequential request's time
// goes"): `npx vite-node bench/access-log-line.ts`. Lines go to /dev/null, 50 to a loop turn as at 50 connections.
import { Effect } from "effect"
import * as AccessLog from "../src/AccessLog.js"
import { EndpointId } from "../src/Domain/EndpointId.js"
import { exchangeOf } from "../test/support/exchange.js"

const exchange = exchangeOf(
  {
    method: "GET",
    url: "/1k",
    headers: { host: "bench.example.com" },
    socket: { remoteAddress: "127.0.0.1" },
  },
  true,
)
exchange.requestId = "7f0c6c1e-8a6f-4d2b-9a43-3c8f1f6c9a11"
exchange.endpointId = EndpointId("bench")
exchange.route = "local"
exchange.via = "127.0.0.1:51774"
exchange.bytesOut = 1024

const nextTurn = Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))

await Effect.runPromise(
  Effect.scoped(
    Effect.gen(function* () {
      const log = yield* AccessLog.make({ enabled: true, query: false, file: "/dev/null" }, "node-1")
      if (log === undefined) return
      for (let round = 0; round < 5; round++) {
        const lines = 200_000
        const started = performance.now()
        for (let i = 0; i < lines; i++) {
          log(exchange, 200)
          if (i % 50 === 49) yield* nextTurn
        }
        console.log(`${(((performance.now() - started) * 1000) / lines).toFixed(2)} µs per line`)
      }
    }),
  ),
)
