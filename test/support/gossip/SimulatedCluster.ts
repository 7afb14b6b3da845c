/**
 * Clusters of in-memory nodes on one `MemoryNetwork`, for tests and benchmarks: start them, tell when they agree,
 * and measure how fast a key spreads. Meant to run inside `Simulation.run`.
 */
import { Context, Effect, Layer, Random, type Scope } from "effect"
import * as MemoryNetwork from "../../../src/Gossip/MemoryNetwork.js"
import { Gossip, type GossipOptions, layerMemory } from "../../../src/Gossip.js"
import * as Simulation from "./Simulation.js"

export type Node = Gossip["Type"]

export const addressOf = (index: number): string => `10.0.${index >> 8}.${index & 255}:8003`

/** One node, living as long as the scope. */
export const startNode = (
  network: MemoryNetwork.MemoryNetwork,
  options: GossipOptions & { readonly address: string },
): Effect.Effect<Node, never, Scope.Scope> =>
  Effect.map(Layer.build(layerMemory(network, options)), Context.get(Gossip))

/** `size` nodes (ids `node-<i>`, addresses from `addressOf`), each of which joins through node 0. */
export const start = (
  network: MemoryNetwork.MemoryNetwork,
  size: number,
  options: GossipOptions = {},
): Effect.Effect<Array<Node>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const nodes = yield* Effect.forEach(
      Array.from({ length: size }, (_, i) => i),
      (i) => startNode(network, { ...options, nodeId: `node-${i}`, address: addressOf(i) }),
    )
    yield* Effect.forEach(nodes.slice(1), (node) => Effect.orDie(node.join([addressOf(0)])), {
      concurrency: "unbounded",
    })
    return nodes
  })

/** Whether each node knows exactly the others, all active, each at its current version. */
export const converged = (nodes: ReadonlyArray<Node>): Effect.Effect<boolean> =>
  Effect.gen(function* () {
    const versions = new Map<string, number>()
    for (const node of nodes) {
      const own = (yield* node.nodes).find((known) => known.id === node.nodeId)
      versions.set(node.nodeId, own?.version ?? -1)
    }
    for (const node of nodes) {
      const known = yield* node.nodes
      if (known.length !== nodes.length) return false
      for (const other of known)
        if (
          other.id !== node.nodeId &&
          (other.status !== "active" || other.version !== versions.get(other.id))
        )
          return false
    }
    return true
  })

/** Whether every node but the owner holds the owner's live entry `key`. */
export const visibleEverywhere = (
  nodes: ReadonlyArray<Node>,
  owner: string,
  key: string,
): Effect.Effect<boolean> =>
  Effect.gen(function* () {
    for (const node of nodes) {
      if (node.nodeId === owner) continue
      const view = yield* node.node(owner)
      if (view._tag === "None" || !view.value.entries.some((entry) => entry.key === key && !entry.deleted))
        return false
    }
    return true
  })

export interface Propagation {
  /** Simulated ms from `setLocal` on one node until every other node holds the entry, one per trial. */
  readonly samples: ReadonlyArray<number>
  readonly p50: number
  readonly p99: number
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] as number

/**
 * Time until an endpoint registered on one node is visible on all nodes, in simulated time: a converged cluster of
 * `size` nodes, then `trials` keys set on random nodes at random moments, one after the other.
 */
export const measurePropagation = (options: {
  readonly size: number
  readonly trials: number
  readonly gossip?: GossipOptions
  readonly network?: Partial<MemoryNetwork.Conditions>
  readonly seed?: number
}): Effect.Effect<Propagation> =>
  Simulation.run(
    Effect.scoped(
      Effect.gen(function* () {
        const network = yield* MemoryNetwork.make(options.network)
        const nodes = yield* start(network, options.size, options.gossip)
        yield* Simulation.waitFor(converged(nodes), "1 minute", "100 millis")
        const samples: Array<number> = []
        for (let trial = 0; trial < options.trials; trial++) {
          // Land at a random point of the nodes' round cycles.
          yield* Effect.sleep(yield* Random.nextIntBetween(0, 1000))
          const origin = nodes[yield* Random.nextIntBetween(0, nodes.length)] as Node
          const key = `endpoint:trial-${trial}`
          yield* origin.setLocal(key, "1")
          samples.push(
            yield* Simulation.waitFor(visibleEverywhere(nodes, origin.nodeId, key), "1 minute", "5 millis"),
          )
        }
        const sorted = [...samples].sort((a, b) => a - b)
        return { samples, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) }
      }),
    ),
    { seed: options.seed ?? 1 },
  )
