import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { measurePropagation, type Propagation } from "./support/gossip/SimulatedCluster.js"

const report = (size: number, result: Propagation) =>
  console.info(
    `gossip propagation, ${size} nodes, 500 ms interval, ${result.samples.length} trials (simulated): ` +
      `p50 ${result.p50} ms, p99 ${result.p99} ms`,
  )

// Time until an endpoint registered on one node is visible on every node (so routable from anywhere).
describe("Gossip propagation", () => {
  it.effect("25 nodes: p99 under 2 s", () =>
    Effect.gen(function* () {
      const result = yield* measurePropagation({ size: 25, trials: 50 })
      report(25, result)
      expect(result.p99).toBeLessThan(2000)
    }),
  )

  it.effect("100 nodes: p99 under 3 s", () =>
    Effect.gen(function* () {
      const result = yield* measurePropagation({ size: 100, trials: 10 })
      report(100, result)
      expect(result.p99).toBeLessThan(3000)
    }),
  )
})
