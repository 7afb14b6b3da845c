import { describe, expect, it } from "@effect/vitest"
import { Chunk, Context, Effect, Layer, Queue, TestClock } from "effect"
import * as Gossip from "../src/Gossip.js"

const node = (network: Gossip.MemoryNetwork.MemoryNetwork, i: number) =>
  Effect.map(
    Layer.build(
      Gossip.layerMemory(network, { nodeId: `n${i}`, address: `n${i}:8003`, nodeExpiry: "10 seconds" }),
    ),
    Context.get(Gossip.Gossip),
  )

const statuses = (of: Gossip.Gossip["Type"]) =>
  Effect.map(of.nodes, (nodes) => Object.fromEntries(nodes.map((n) => [n.id, n.status])))

describe("Gossip layers", () => {
  it.scoped("three nodes on layerMemory converge, replay to subscribers and see a leave (TestClock)", () =>
    Effect.gen(function* () {
      const network = yield* Gossip.MemoryNetwork.make()
      const [a, b, c] = yield* Effect.forEach([0, 1, 2], (i) => node(network, i))
      if (a === undefined || b === undefined || c === undefined) return expect.unreachable()
      yield* a.setLocal("endpoint:e", "2")
      expect(yield* b.join(["n0:8003"])).toEqual(["n0"])
      expect(yield* c.join(["n1:8003"])).toEqual(["n1"])
      yield* TestClock.adjust("3 seconds")
      expect(yield* statuses(c)).toEqual({ n0: "active", n1: "active", n2: "active" })
      const events = yield* c.subscribe
      expect(Chunk.toArray(yield* Queue.takeAll(events))).toEqual([
        { _tag: "NodeJoined", nodeId: "n1" },
        { _tag: "NodeJoined", nodeId: "n0" },
        { _tag: "KeyUpdated", nodeId: "n0", key: "endpoint:e", value: "2" },
      ])
      yield* a.leave
      yield* TestClock.adjust("1 second")
      expect(yield* statuses(c)).toMatchObject({ n0: "left" })
      yield* TestClock.adjust("11 seconds")
      expect(yield* statuses(b)).toEqual({ n1: "active", n2: "active" })
      expect(Chunk.toArray(yield* Queue.takeAll(events))).toEqual([
        { _tag: "NodeStatusChanged", nodeId: "n0", status: "left" },
        { _tag: "NodeRemoved", nodeId: "n0" },
      ])
      expect((yield* a.nodes).find((n) => n.id === "n0")?.status).toBe("left")
    }),
  )

  it.scoped("a single node keeps its entries, knows only itself and cannot join", () =>
    Effect.gen(function* () {
      const gossip = yield* Effect.map(
        Layer.build(Gossip.layerSingleNode("solo")),
        Context.get(Gossip.Gossip),
      )
      yield* gossip.setLocal("proxy_addr", "10.0.0.1:8000")
      expect(gossip.nodeId).toBe("solo")
      expect(yield* gossip.localEntries).toEqual(new Map([["proxy_addr", "10.0.0.1:8000"]]))
      expect(yield* gossip.nodes).toEqual([
        { id: "solo", addr: "", version: 1, status: "active", expiresAt: undefined },
      ])
      expect(yield* gossip.join([])).toEqual([])
      const error = yield* Effect.flip(gossip.join(["10.0.0.2:8003"]))
      expect(error).toMatchObject({ _tag: "GossipError", reason: "join failed" })
      yield* gossip.leave
      expect((yield* gossip.nodes)[0]?.status).toBe("left")
    }),
  )

  it("generates fresh ids: the prefix and 7 characters of [a-z0-9]", () => {
    const ids = new Set(Array.from({ length: 100 }, () => Gossip.generateNodeId("pico-1-")))
    expect(ids.size).toBe(100)
    for (const id of ids) expect(id).toMatch(/^pico-1-[a-z0-9]{7}$/)
  })
})
