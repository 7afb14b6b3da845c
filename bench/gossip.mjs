// Gossip propagation benchmark: how long until an endpoint registered on one node is routable from every
// other node. 3 and 25 in-process nodes over real UDP/TCP on loopback (wall time), and 100 nodes on the
// in-memory network (virtual time, so the 2-core machine's load does not distort it).
//
//   node bench/gossip.mjs            (after npm run build; bench/run does both)
//   BENCH_GOSSIP_TRIALS=20 ...       trials per cluster size
import { Context, Effect, Exit, Layer, Logger, LogLevel, Queue, Scope } from "effect"
import { build } from "esbuild"
import * as NetTransport from "../dist/Gossip/NetTransport.js"
import * as Gossip from "../dist/Gossip.js"

// The in-memory cluster simulator is test code (test/support/gossip/), not shipped in dist: bundle it for the run.
const simulator = new URL("./.work/simulated-cluster.mjs", import.meta.url)
await build({
  entryPoints: [new URL("../test/support/gossip/SimulatedCluster.ts", import.meta.url).pathname],
  bundle: true,
  platform: "node",
  format: "esm",
  packages: "external",
  outfile: simulator.pathname,
  logLevel: "warning",
})
const { measurePropagation } = await import(simulator.href)

const TRIALS = Number(process.env.BENCH_GOSSIP_TRIALS || 20)
const INTERVAL_MS = 500 // the default --gossip.interval

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]
const summarize = (samples) => {
  const sorted = [...samples].sort((a, b) => a - b)
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted[sorted.length - 1] }
}

/** A node on real UDP/TCP on 127.0.0.1 with an ephemeral port. */
const startNode = (scope, id) =>
  Layer.buildWithScope(
    Gossip.layer(
      NetTransport.make({ host: "127.0.0.1", port: 0 }, (bound) => `127.0.0.1:${bound.port}`),
      { nodeId: id },
    ),
    scope,
  ).pipe(Effect.map((context) => Context.get(context, Gossip.Gossip)))

const addressOf = (node) =>
  Effect.map(node.nodes, (nodes) => nodes.find((known) => known.id === node.nodeId).addr)

/** Waits until every other node has seen `key` from `origin`, by watching their event queues. */
const measureOnce = (origin, watchers, key) =>
  Effect.gen(function* () {
    const started = Date.now()
    yield* origin.setLocal(key, "1")
    yield* Effect.forEach(
      watchers,
      (queue) =>
        Queue.take(queue).pipe(
          Effect.repeat({ until: (event) => event._tag === "KeyUpdated" && event.key === key }),
        ),
      { concurrency: "unbounded" },
    )
    return Date.now() - started
  })

const overLoopback = (size) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const nodes = []
    for (let i = 0; i < size; i++) nodes.push(yield* startNode(scope, `bench-${i}`))
    const seed = yield* addressOf(nodes[0])
    yield* Effect.forEach(nodes.slice(1), (node) => node.join([seed]), { concurrency: "unbounded" })
    // Let membership settle before timing anything.
    yield* Effect.sleep(`${INTERVAL_MS * 6} millis`)
    const samples = []
    for (let trial = 0; trial < TRIALS; trial++) {
      const origin = nodes[trial % size]
      const watchers = yield* Effect.forEach(
        nodes.filter((node) => node !== origin),
        (node) => Scope.extend(node.subscribe, scope),
      )
      // Land at a random point of the nodes' round cycles.
      yield* Effect.sleep(`${Math.floor(Math.random() * INTERVAL_MS)} millis`)
      samples.push(yield* measureOnce(origin, watchers, `endpoint:trial-${trial}`))
    }
    yield* Scope.close(scope, Exit.void)
    return summarize(samples)
  })

// Membership logs from dozens of nodes would bury the table.
const quietly = (effect) => Effect.runPromise(Logger.withMinimumLogLevel(effect, LogLevel.Warning))

const rows = []
for (const size of [3, 25]) {
  const result = await quietly(overLoopback(size))
  rows.push({ nodes: size, network: "UDP on loopback", ...result })
}
const memory = await quietly(measurePropagation({ size: 100, trials: TRIALS, seed: 1 }))
rows.push({ nodes: 100, network: "in memory (virtual time)", ...summarize(memory.samples) })

console.log(
  `\nGossip propagation: endpoint registered on one node -> visible on all (interval ${INTERVAL_MS} ms, ${TRIALS} trials)\n`,
)
console.log("nodes  network                    p50 ms   p99 ms   max ms")
for (const row of rows) {
  console.log(
    `${String(row.nodes).padStart(5)}  ${row.network.padEnd(25)} ${String(Math.round(row.p50)).padStart(7)}  ${String(Math.round(row.p99)).padStart(7)}  ${String(Math.round(row.max)).padStart(7)}`,
  )
}
const at25 = rows.find((row) => row.nodes === 25)
console.log(
  `\n  ${at25.p99 < 2000 ? "PASS" : "FAIL"}  p99 at 25 nodes < 2000 ms (actual ${Math.round(at25.p99)} ms)`,
)
