import { describe, expect, it } from "@effect/vitest"
import { Chunk, Clock, type Duration, Effect, Exit, HashMap, Logger, Option, Queue, type Scope } from "effect"
import fc from "fast-check"
import * as MemoryNetwork from "../src/Gossip/MemoryNetwork.js"
import * as Message from "../src/Gossip/Message.js"
import { GossipError } from "../src/Gossip.js"
import {
  addressOf,
  converged,
  type Node,
  start,
  startNode,
  visibleEverywhere,
} from "./support/gossip/SimulatedCluster.js"
import * as Simulation from "./support/gossip/Simulation.js"

/** Runs a test body in simulated time, with a fresh network. */
const simulate = <A, E>(
  body: (network: MemoryNetwork.MemoryNetwork) => Effect.Effect<A, E, Scope.Scope>,
  conditions: Partial<MemoryNetwork.Conditions> = {},
) => Simulation.run(Effect.scoped(Effect.flatMap(MemoryNetwork.make(conditions), body)))

/** `size` nodes that all know each other. */
const startConverged = (network: MemoryNetwork.MemoryNetwork, size: number) =>
  Effect.tap(start(network, size), (nodes) => Simulation.waitFor(converged(nodes), "30 seconds"))

/** A new process with `nodeId` (--cluster.node-id) at `address`, joined through node 0. */
const restartAs = (network: MemoryNetwork.MemoryNetwork, nodeId: string, address: string) =>
  Effect.tap(startNode(network, { nodeId, address }), (node) => Effect.orDie(node.join([addressOf(0)])))

const statusOf = (observer: Node, id: string) =>
  Effect.map(observer.nodes, (nodes) => nodes.find((node) => node.id === id)?.status ?? "removed")

const everyone = (nodes: ReadonlyArray<Node>, predicate: (node: Node) => Effect.Effect<boolean>) =>
  Effect.map(Effect.forEach(nodes, predicate), (results) => results.every(Boolean))

/** Whether every observer shows node `id` with `status` ("removed" when it no longer lists it). */
const shownAs = (observers: ReadonlyArray<Node>, id: string, status: string) =>
  everyone(observers, (node) => Effect.map(statusOf(node, id), (s) => s === status))

/** Every node holds every other node's current entries, exactly. */
const agreeOnEntries = (nodes: ReadonlyArray<Node>) =>
  Effect.forEach(nodes, (owner) =>
    Effect.gen(function* () {
      const own = (yield* owner.node(owner.nodeId)).pipe((view) =>
        view._tag === "Some" ? view.value.entries : [],
      )
      for (const other of nodes) {
        const seen = yield* other.node(owner.nodeId)
        expect(seen._tag === "Some" ? seen.value.entries : undefined).toEqual(own)
      }
    }),
  )

describe("Gossip cluster (in memory, simulated time)", () => {
  for (const size of [3, 25, 100])
    it.effect(`${size} nodes converge`, () =>
      simulate((network) =>
        Effect.gen(function* () {
          const nodes = yield* start(network, size)
          yield* Effect.forEach(nodes, (node, i) =>
            Effect.zipRight(
              node.setLocal("proxy_addr", `10.1.0.${i}:8000`),
              node.setLocal(`endpoint:e${i % 7}`, "1"),
            ),
          )
          yield* Simulation.waitFor(converged(nodes), "30 seconds", "50 millis")
          yield* agreeOnEntries(nodes)
        }),
      ),
    )

  it.effect(
    "an endpoint registered on one node reaches every node's subscribers, and so does its removal",
    () =>
      simulate((network) =>
        Effect.gen(function* () {
          const nodes = yield* startConverged(network, 25)
          const queues = yield* Effect.forEach(nodes, (node) => node.subscribe)
          // Subscribing replays the current state: drain it.
          yield* Effect.forEach(queues, Queue.takeAll)
          const owner = nodes[7] as Node
          yield* owner.setLocal("endpoint:x", "1")
          yield* Simulation.waitFor(visibleEverywhere(nodes, owner.nodeId, "endpoint:x"), "2 seconds")
          yield* owner.deleteLocal("endpoint:x")
          yield* Simulation.waitFor(converged(nodes), "2 seconds")
          for (const [i, queue] of queues.entries()) {
            if (i === 7) continue
            expect(Chunk.toArray(yield* Queue.takeAll(queue))).toEqual([
              { _tag: "KeyUpdated", nodeId: owner.nodeId, key: "endpoint:x", value: "1" },
              { _tag: "KeyDeleted", nodeId: owner.nodeId, key: "endpoint:x" },
            ])
          }
          expect((yield* Queue.takeAll(queues[7] as Queue.Dequeue<unknown>)).length).toBe(0)
        }),
      ),
  )

  it.effect("a partition marks the other side unreachable, and healing brings everything back", () =>
    simulate((network) =>
      Effect.gen(function* () {
        const nodes = yield* startConverged(network, 10)
        const [left, right] = [nodes.slice(0, 5), nodes.slice(5)]
        yield* network.partition([left.map((_, i) => addressOf(i))])
        yield* Simulation.waitFor(
          everyone(left, (node) =>
            everyone(right, (other) => Effect.map(statusOf(node, other.nodeId), (s) => s === "unreachable")),
          ),
          "30 seconds",
        )
        yield* (left[0] as Node).setLocal("endpoint:during", "1")
        yield* (right[0] as Node).setLocal("endpoint:during", "2")
        yield* network.heal
        yield* Simulation.waitFor(converged(nodes), "10 seconds")
        yield* agreeOnEntries(nodes)
      }),
    ),
  )

  it.effect("a partition longer than the expiry heals too: removed but live nodes find back", () =>
    simulate((network) =>
      Effect.gen(function* () {
        const nodes = yield* startConverged(network, 10)
        yield* network.partition([[0, 1, 2, 3].map(addressOf)])
        yield* Simulation.waitFor(
          Effect.map((nodes[0] as Node).nodes, (known) => known.length === 4),
          "2 minutes",
        )
        yield* Effect.sleep("1 minute")
        yield* network.heal
        yield* Simulation.waitFor(converged(nodes), "30 seconds")
      }),
    ),
  )

  it.effect(
    "a node killed without leaving is marked unreachable, then removed everywhere, and stays removed",
    () =>
      simulate((network) =>
        Effect.gen(function* () {
          const nodes = yield* startConverged(network, 10)
          const victim = nodes[3] as Node
          const survivors = nodes.filter((node) => node !== victim)
          yield* victim.setLocal("endpoint:victim", "1")
          yield* Simulation.waitFor(visibleEverywhere(nodes, victim.nodeId, "endpoint:victim"), "5 seconds")
          yield* network.kill(addressOf(3))
          const killedAt = yield* Clock.currentTimeMillis
          yield* Simulation.waitFor(shownAs(survivors, victim.nodeId, "unreachable"), "30 seconds")
          yield* Simulation.waitFor(shownAs(survivors, victim.nodeId, "removed"), "2 minutes")
          // Not before it has been unreachable for the expiry somewhere.
          expect((yield* Clock.currentTimeMillis) - killedAt).toBeGreaterThan(60_000)
          // Several more expiry periods: no survivor ever sees it again.
          for (let second = 0; second < 300; second++) {
            yield* Effect.sleep("1 second")
            for (const node of survivors) expect(yield* statusOf(node, victim.nodeId)).toBe("removed")
          }
          expect(yield* converged(survivors)).toBe(true)
        }),
      ),
  )

  it.effect(
    "a node restarted with its old id (--cluster.node-id) is itself again at once: its new address, none of its old keys",
    () =>
      simulate((network) =>
        Effect.gen(function* () {
          const nodes = yield* startConverged(network, 4)
          const old = nodes[3] as Node
          const survivors = nodes.slice(0, 3)
          yield* old.setLocal("endpoint:kept", "1")
          yield* old.setLocal("endpoint:moved-away", "1")
          yield* Simulation.waitFor(visibleEverywhere(nodes, old.nodeId, "endpoint:moved-away"), "5 seconds")
          // It ran for a while: its heartbeat and versions are well ahead of a new process's.
          yield* Effect.sleep("2 minutes")
          yield* network.kill(addressOf(3))
          const restarted = yield* restartAs(network, old.nodeId, addressOf(9))
          yield* restarted.setLocal("endpoint:kept", "2")
          const seenOfIt = (observer: Node) =>
            Effect.map(observer.node(old.nodeId), (view) =>
              view._tag === "None"
                ? undefined
                : {
                    addr: view.value.addr,
                    status: view.value.status,
                    keys: view.value.entries.filter((entry) => !entry.internal && !entry.deleted),
                  },
            )
          const caughtUp = everyone(survivors, (node) =>
            Effect.map(
              seenOfIt(node),
              (seen) =>
                seen?.addr === addressOf(9) &&
                seen.status === "active" &&
                seen.keys.length === 1 &&
                seen.keys[0]?.key === "endpoint:kept" &&
                seen.keys[0]?.value === "2",
            ),
          )
          // Well within the old process's two minutes of heartbeats, which it used to have to outrun.
          yield* Simulation.waitFor(caughtUp, "5 seconds")
          // And it stays so: not taken for silent later.
          for (let second = 0; second < 60; second++) {
            yield* Effect.sleep("1 second")
            expect(yield* caughtUp).toBe(true)
          }
        }),
      ),
  )

  it.effect(
    "a node restarted with its old id takes its keys back even when it wrote as many as the old one",
    () =>
      simulate((network) =>
        Effect.gen(function* () {
          const nodes = yield* startConverged(network, 3)
          const old = nodes[2] as Node
          yield* old.setLocal("proxy_addr", "10.0.0.2:8000")
          yield* Simulation.waitFor(visibleEverywhere(nodes, old.nodeId, "proxy_addr"), "5 seconds")
          yield* Effect.sleep("10 seconds")
          yield* network.kill(addressOf(2))
          const restarted = yield* startNode(network, { nodeId: old.nodeId, address: addressOf(5) })
          // One write before joining, as a server sets its addresses: the old process's count, another value.
          yield* restarted.setLocal("proxy_addr", "10.0.0.5:8000")
          yield* Effect.orDie(restarted.join([addressOf(0)]))
          yield* Simulation.waitFor(
            everyone(nodes.slice(0, 2), (node) =>
              Effect.map(
                node.node(old.nodeId),
                (view) =>
                  view._tag === "Some" &&
                  view.value.entries.some(
                    (entry) => entry.key === "proxy_addr" && entry.value === "10.0.0.5:8000",
                  ),
              ),
            ),
            "5 seconds",
          )
        }),
      ),
  )

  it.effect(
    "a partition longer than the expiry heals even when one side was replaced meanwhile (new ids, new addresses)",
    () =>
      simulate((network) =>
        Effect.gen(function* () {
          const nodes = yield* startConverged(network, 10)
          yield* Effect.sleep("2 minutes")
          const sideA = [0, 1, 2, 3, 4].map(addressOf)
          const fresh = [100, 101, 102, 103, 104].map(addressOf)
          yield* network.partition([[...sideA, ...fresh]])
          yield* Simulation.waitFor(
            Effect.map((nodes[0] as Node).nodes, (known) => known.length === 5),
            "2 minutes",
          )
          // A rolling replacement of side A, as a deploy does (new processes, new ids, new pod addresses): the new
          // nodes know side B only by its death certificates, learned from others.
          const replaced: Array<Node> = []
          for (const [i, address] of fresh.entries()) {
            const node = yield* startNode(network, { nodeId: `new-${i}`, address })
            yield* Effect.orDie(node.join([i === 0 ? addressOf(0) : (fresh[0] as string)]))
            replaced.push(node)
          }
          yield* Effect.sleep("10 seconds")
          for (const address of sideA) yield* network.kill(address)
          yield* Effect.sleep("30 seconds")
          yield* network.heal
          yield* Simulation.waitFor(converged([...replaced, ...nodes.slice(5)]), "3 minutes", "1 second")
        }),
      ),
  )

  it.effect("a node restarted with its old id after the others removed it is readmitted at once", () =>
    simulate((network) =>
      Effect.gen(function* () {
        const nodes = yield* startConverged(network, 3)
        const old = nodes[2] as Node
        const survivors = nodes.slice(0, 2)
        yield* Effect.sleep("5 minutes")
        yield* network.kill(addressOf(2))
        yield* Simulation.waitFor(shownAs(survivors, old.nodeId, "removed"), "3 minutes")
        // Their death certificates hold its old heartbeat, five minutes of rounds ahead of a new process's.
        yield* restartAs(network, old.nodeId, addressOf(7))
        yield* Simulation.waitFor(shownAs(survivors, old.nodeId, "active"), "5 seconds")
      }),
    ),
  )

  for (const removedFirst of [false, true])
    it.effect(
      `a node restarted with its old id after leaving gracefully is back at once${removedFirst ? ", after the others removed it" : ""}`,
      () =>
        simulate((network) =>
          Effect.gen(function* () {
            const nodes = yield* startConverged(network, 3)
            const old = nodes[2] as Node
            const survivors = nodes.slice(0, 2)
            yield* old.setLocal("endpoint:old", "1")
            yield* Effect.sleep("1 minute")
            yield* Effect.orDie(old.leave)
            const shown = (status: string) => shownAs(survivors, old.nodeId, status)
            yield* Simulation.waitFor(shown("left"), "5 seconds")
            yield* network.kill(addressOf(2))
            if (removedFirst) yield* Simulation.waitFor(shown("removed"), "3 minutes")
            const restarted = yield* restartAs(network, old.nodeId, addressOf(8))
            yield* restarted.setLocal("endpoint:new", "1")
            yield* Simulation.waitFor(shown("active"), "5 seconds")
            yield* Simulation.waitFor(
              visibleEverywhere([...survivors, restarted], old.nodeId, "endpoint:new"),
              "5 seconds",
            )
            for (const node of survivors) {
              const view = yield* node.node(old.nodeId)
              const keys = view._tag === "Some" ? view.value.entries.filter((entry) => !entry.deleted) : []
              expect(keys.map((entry) => entry.key)).not.toContain("endpoint:old")
            }
          }),
        ),
    )

  it.effect(
    "two live processes with one node id settle: the newer one keeps it, and versions stop moving",
    () =>
      simulate((network) =>
        Effect.gen(function* () {
          const nodes = yield* startConverged(network, 3)
          const first = nodes[2] as Node
          yield* first.setLocal("endpoint:first", "1")
          yield* Effect.sleep("2 minutes")
          const second = yield* restartAs(network, first.nodeId, addressOf(6))
          yield* second.setLocal("endpoint:second", "1")
          // Past the newer process's window for catching up, then a minute more: nothing changes any more.
          yield* Effect.sleep("2 minutes")
          const versionAt = () =>
            Effect.map(nodes[0]?.node(first.nodeId) ?? Effect.succeed(undefined), (view) =>
              view?._tag === "Some" ? view.value.version : -1,
            )
          const settled = yield* versionAt()
          yield* Effect.sleep("1 minute")
          expect(yield* versionAt()).toBe(settled)
          const view = yield* (nodes[0] as Node).node(first.nodeId)
          const keys = view._tag === "Some" ? view.value.entries.filter((e) => !e.deleted && !e.internal) : []
          expect(keys.map((entry) => entry.key)).toContain("endpoint:second")
        }),
      ),
  )

  for (const newerStops of ["leaves", "is killed"] as const)
    it.effect(
      `of two live processes with one node id, the older takes it back when the newer ${newerStops}, warned meanwhile`,
      () => {
        const warnings: Array<string> = []
        const collect = Logger.make(({ logLevel, message, annotations }) => {
          if (logLevel._tag === "Warning")
            warnings.push(
              `${String(message)} other-addr=${Option.getOrUndefined(HashMap.get(annotations, "other-addr"))}`,
            )
        })
        return simulate((network) =>
          Effect.gen(function* () {
            // Ten: the peers remove the newer one at different moments, and those that still hold it must not
            // pass its entries back to those that took the older one back.
            const nodes = yield* startConverged(network, 10)
            const older = nodes[9] as Node
            const survivors = nodes.slice(0, 9)
            yield* older.setLocal("endpoint:older", "1")
            yield* Effect.sleep("2 minutes")
            const newer = yield* restartAs(network, older.nodeId, addressOf(60))
            yield* newer.setLocal("endpoint:newer", "1")
            const holds = (key: string) => visibleEverywhere(survivors, older.nodeId, key)
            yield* Simulation.waitFor(holds("endpoint:newer"), "10 seconds")
            expect(yield* holds("endpoint:older")).toBe(false)
            // The older one is told, naming where the other is.
            yield* Simulation.waitFor(
              Effect.sync(() => warnings.some((line) => line.includes(`other-addr=${addressOf(60)}`))),
              "5 seconds",
            )
            expect(warnings[0]).toMatch(/^another live process has this node id/)
            if (newerStops === "leaves") yield* Effect.orDie(newer.leave)
            yield* network.kill(addressOf(60))
            const backAtOlder = everyone(survivors, (node) =>
              Effect.map(
                node.node(older.nodeId),
                (view) => view._tag === "Some" && view.value.addr === addressOf(9),
              ),
            )
            // After a leave, within a few rounds; after a crash, once the peers remove the newer one (about 70 s):
            // not when its death certificate lapses, ten minutes later, as before.
            const within = newerStops === "leaves" ? "10 seconds" : "2 minutes"
            const active = shownAs(survivors, older.nodeId, "active")
            yield* Simulation.waitFor(
              Effect.map(Effect.all([holds("endpoint:older"), active]), (all) => all.every(Boolean)),
              within,
            )
            // Each peer gossips to it where it is once it has heard from it there itself.
            yield* Simulation.waitFor(backAtOlder, "30 seconds")
            expect(yield* holds("endpoint:newer")).toBe(false)
            // And it stays so.
            yield* Effect.sleep("2 minutes")
            for (const node of survivors) expect(yield* statusOf(node, older.nodeId)).toBe("active")
          }),
        ).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, collect)))
      },
    )

  it.effect("two young processes with one node id settle within seconds, not a minute", () =>
    simulate((network) =>
      Effect.gen(function* () {
        const nodes = yield* startConverged(network, 3)
        const first = nodes[2] as Node
        yield* Effect.sleep("10 seconds")
        // Both are in their first minute, when a process may catch up with news of its id.
        const second = yield* restartAs(network, first.nodeId, addressOf(6))
        yield* second.setLocal("endpoint:second", "1")
        yield* Effect.sleep("10 seconds")
        const addrAt = (node: Node) =>
          Effect.map(node.node(first.nodeId), (view) => (view._tag === "Some" ? view.value.addr : ""))
        const settled = yield* addrAt(nodes[0] as Node)
        const version = (yield* (nodes[0] as Node).node(first.nodeId)).pipe((view) =>
          view._tag === "Some" ? view.value.version : -1,
        )
        for (let second = 0; second < 60; second++) {
          yield* Effect.sleep("1 second")
          expect(yield* addrAt(nodes[0] as Node)).toBe(settled)
          expect(yield* addrAt(nodes[1] as Node)).toBe(settled)
        }
        const after = yield* (nodes[0] as Node).node(first.nodeId)
        expect(after._tag === "Some" ? after.value.version : -1).toBe(version)
      }),
    ),
  )

  it.effect("two processes with one node id stay settled, though the one outrun gossips faster", () =>
    simulate((network) =>
      Effect.gen(function* () {
        const nodes = yield* startConverged(network, 3)
        // The one outrun carries no traffic, so its rounds may well come sooner than the other's. Both young, they
        // settle with a lead of 100 rounds, which 5 % more rounds would pass in 17 minutes.
        const dup = (address: string, interval: Duration.DurationInput) =>
          Effect.tap(startNode(network, { nodeId: "dup", address, interval }), (node) =>
            Effect.orDie(node.join([addressOf(0)])),
          )
        yield* dup(addressOf(50), "475 millis")
        yield* Effect.sleep("10 seconds")
        yield* dup(addressOf(60), "500 millis")
        yield* Effect.sleep("10 seconds")
        const addrAt = Effect.map((nodes[0] as Node).node("dup"), (view) =>
          view._tag === "Some" ? view.value.addr : "",
        )
        expect(yield* addrAt).toBe(addressOf(60))
        for (let minute = 0; minute < 45; minute++) {
          yield* Effect.sleep("1 minute")
          expect(yield* addrAt).toBe(addressOf(60))
        }
      }),
    ),
  )

  it.effect(
    "a dead node's death certificate lapses everywhere after ten node expiries, not passed back and forth",
    () =>
      simulate((network) =>
        Effect.gen(function* () {
          const nodes = yield* startConverged(network, 10)
          yield* network.kill(addressOf(3))
          // What a node's digest holds of removed nodes, as a joiner is told.
          const certificatesAt = (index: number) =>
            Effect.map(
              Effect.orDie(
                network.transport("10.9.9.9:8003").request(
                  addressOf(index),
                  Message.encode({
                    _tag: "Join",
                    from: { id: "onlooker", addr: "10.9.9.9:8003", heartbeat: 0 },
                    nodes: [],
                    digest: [],
                  }),
                ),
              ),
              (answer) => {
                const decoded = Message.decode(answer)
                return decoded._tag === "Right" && decoded.right._tag === "Welcome"
                  ? decoded.right.digest
                      .filter((row) => row[4] === Message.RowState.removed)
                      .map((row) => row[0])
                  : ["not a welcome"]
              },
            )
          const everywhere = (held: boolean) =>
            Effect.map(
              Effect.forEach(
                nodes.filter((_, i) => i !== 3),
                (_, i) => certificatesAt(i < 3 ? i : i + 1),
              ),
              (lists) => lists.every((ids) => ids.includes("node-3") === held),
            )
          yield* Simulation.waitFor(everywhere(true), "2 minutes", "5 seconds")
          // Removed after about 70 s; its certificate lives 10 minutes from then.
          yield* Effect.sleep("8 minutes")
          expect(yield* everywhere(true)).toBe(true)
          yield* Simulation.waitFor(everywhere(false), "4 minutes", "5 seconds")
          for (let minute = 0; minute < 10; minute++) {
            yield* Effect.sleep("1 minute")
            expect(yield* everywhere(false)).toBe(true)
          }
        }),
      ),
  )

  it.effect("converges with 10% packet loss, duplicates and reordering", () =>
    simulate(
      (network) =>
        Effect.gen(function* () {
          const nodes = yield* start(network, 25)
          yield* Effect.forEach(nodes, (node, i) => node.setLocal("proxy_addr", `10.1.0.${i}:8000`))
          yield* Simulation.waitFor(converged(nodes), "30 seconds")
          yield* (nodes[11] as Node).setLocal("endpoint:lossy", "3")
          yield* Simulation.waitFor(
            visibleEverywhere(nodes, (nodes[11] as Node).nodeId, "endpoint:lossy"),
            "5 seconds",
          )
          yield* Simulation.waitFor(converged(nodes), "10 seconds")
          yield* agreeOnEntries(nodes)
          // Noisy but alive: nobody was suspected for long enough to be removed.
          for (const node of nodes) expect((yield* node.nodes).length).toBe(25)
        }),
      { dropRate: 0.1, duplicateRate: 0.05, minDelay: "1 millis", maxDelay: "30 millis" },
    ),
  )

  it.effect("a node that leaves is shown left everywhere, then removed, and does not come back", () =>
    simulate((network) =>
      Effect.gen(function* () {
        const nodes = yield* startConverged(network, 10)
        const leaver = nodes[4] as Node
        const others = nodes.filter((node) => node !== leaver)
        yield* leaver.leave
        yield* leaver.leave
        yield* Simulation.waitFor(shownAs(others, leaver.nodeId, "left"), "5 seconds")
        const gone = yield* Simulation.waitFor(
          shownAs(others, leaver.nodeId, "removed"),
          "70 seconds",
          "1 second",
        )
        expect(gone).toBeGreaterThanOrEqual(59_000)
        yield* Effect.sleep("3 minutes")
        for (const node of others) expect(yield* statusOf(node, leaver.nodeId)).toBe("removed")
        expect(yield* converged(others)).toBe(true)
      }),
    ),
  )

  it.effect("a leave is acknowledged at once by three peers, though the others it knows never answer", () =>
    simulate((network) =>
      Effect.gen(function* () {
        const nodes = yield* startConverged(network, 4)
        const leaver = nodes[0] as Node
        // Eight members that spoke once and now hang every request (a host gone without a word, say).
        for (let i = 0; i < 8; i++) {
          const address = `10.7.0.${i}:8003`
          yield* network.transport(address).serve({ packet: () => Effect.void, request: () => Effect.never })
          yield* network.transport(address).send(
            addressOf(0),
            Message.encode({
              _tag: "Digest",
              from: { id: `stuck-${i}`, addr: address, heartbeat: 1 },
              nodes: [[`stuck-${i}`, address, 0, 1, Message.RowState.live]],
            }),
          )
        }
        yield* Simulation.waitFor(
          Effect.map(leaver.nodes, (known) => known.filter((node) => node.status === "active").length === 12),
          "5 seconds",
        )
        const started = yield* Clock.currentTimeMillis
        yield* Effect.orDie(leaver.leave)
        // One at a time, a stuck one asked first would take its 10 s deadline; the drain allows 5 s in all.
        expect((yield* Clock.currentTimeMillis) - started).toBeLessThan(1000)
        // The three that acknowledged it hold it left already.
        for (const node of nodes.slice(1)) expect(yield* statusOf(node, leaver.nodeId)).toBe("left")
      }),
    ),
  )

  it.effect("splits digests and sends deltas too large for a datagram over streams", () =>
    simulate((network) =>
      Effect.gen(function* () {
        const nodes = yield* start(network, 10, { maxPacketSize: 300 })
        yield* Simulation.waitFor(converged(nodes), "30 seconds")
        const owner = nodes[2] as Node
        const before = yield* owner.stats
        yield* owner.setLocal("big", "x".repeat(1000))
        yield* Simulation.waitFor(converged(nodes), "5 seconds")
        yield* agreeOnEntries(nodes)
        const after = yield* owner.stats
        expect(after.requestsOut).toBeGreaterThan(before.requestsOut)
        expect(after.bytesOut - before.bytesOut).toBeGreaterThan(3000)
      }),
    ),
  )

  it.effect(
    "without a key, one datagram naming made-up nodes at a victim's address costs the victim a few datagrams per round for seconds, then one small probe per round",
    () =>
      simulate((network) =>
        Effect.gen(function* () {
          const nodes = yield* startConverged(network, 3)
          const victim = "10.66.0.1:9999"
          const arrivals: Array<{ readonly at: number; readonly bytes: number }> = []
          yield* network.transport(victim).serve({
            packet: (bytes) =>
              Effect.flatMap(Clock.currentTimeMillis, (at) =>
                Effect.sync(() => arrivals.push({ at, bytes: bytes.length })),
              ),
            request: () => Effect.succeed(Option.none()),
          })
          const madeUp = Array.from(
            { length: 1000 },
            (_, i): Message.DigestRow => [`ghost-${i}`, victim, 0, 1, Message.RowState.live],
          )
          const start = yield* Clock.currentTimeMillis
          // The sender is one of them, so that one has spoken, from the victim's address. Node 0 learns them all
          // (the others only when node 0 happens to pick one of them among 1,002: it is an attack on the cluster too).
          yield* network.transport("10.9.9.9:8003").send(
            addressOf(0),
            Message.encode({
              _tag: "Digest",
              from: { id: "ghost-0", addr: victim, heartbeat: 1 },
              nodes: madeUp,
            }),
          )
          yield* Simulation.waitFor(
            Effect.map(nodes[0]?.nodes ?? Effect.succeed([]), (known) => known.length > 500),
            "10 seconds",
          )
          // Past the made-up nodes' silence, expiry and death certificates (about 11 minutes).
          yield* Effect.sleep("12 minutes")
          // A whole digest of 1,000 rows is about 30 datagrams, sent each round (2 a second) to a made-up node while
          // they seem alive, then as probes for 11 minutes: 50,000 datagrams and more from node 0 alone.
          const firstMinute = arrivals.filter(({ at }) => at <= start + 60_000)
          expect(firstMinute.length).toBeLessThan(1500)
          // Then only probes of the one that spoke: our row and theirs, at most one per node per round.
          const later = arrivals.filter(({ at }) => at > start + 60_000)
          expect(later.every(({ bytes }) => bytes < 200)).toBe(true)
          expect(later.length).toBeLessThan(3 * 2 * 11 * 60)
          // The real nodes still know each other.
          for (const node of nodes) {
            const real = (yield* node.nodes).filter((known) => known.id.startsWith("node-"))
            expect(real.map((known) => known.status)).toEqual(["active", "active", "active"])
          }
        }),
      ),
  )

  it.effect("counts and drops malformed datagrams and requests without harm", () =>
    simulate((network) =>
      Effect.gen(function* () {
        const nodes = yield* start(network, 3)
        yield* Simulation.waitFor(converged(nodes), "10 seconds")
        const target = nodes[0] as Node
        const before = yield* target.stats
        const attacker = network.transport("10.9.9.9:8003")
        const garbage = fc.sample(fc.uint8Array({ maxLength: 1500 }), { numRuns: 300, seed: 7 })
        for (const bytes of garbage) yield* attacker.send(addressOf(0), bytes)
        const requests = yield* Effect.forEach(garbage.slice(0, 50), (bytes) =>
          Effect.exit(attacker.request(addressOf(0), bytes)),
        )
        // A well-formed message of the wrong kind is dropped as well.
        yield* attacker.send(
          addressOf(0),
          new Uint8Array([1, ...Buffer.from('{"_tag":"Ack","from":{"id":"x","addr":"y","heartbeat":0}}')]),
        )
        yield* Effect.sleep("1 second")
        expect(requests.every(Exit.isFailure)).toBe(true)
        const after = yield* target.stats
        expect(after.malformed - before.malformed).toBe(351)
        expect(after.packetsIn - before.packetsIn).toBeGreaterThanOrEqual(301)
        expect(yield* converged(nodes)).toBe(true)
        yield* agreeOnEntries(nodes)
      }),
    ),
  )

  it.effect("join resolves to the nodes reached and fails only when none was", () =>
    simulate((network) =>
      Effect.gen(function* () {
        const [node, alone] = (yield* start(network, 2)) as [Node, Node]
        expect(yield* node.join([])).toEqual([])
        expect(yield* node.join([addressOf(0), addressOf(1), "10.9.9.9:8003"])).toEqual(["node-0", "node-1"])
        const failure = yield* Effect.flip(node.join(["10.9.9.9:8003"]))
        expect(failure).toBeInstanceOf(GossipError)
        expect(failure.reason).toBe("join failed")
        yield* network.kill(addressOf(0))
        yield* Simulation.waitFor(
          Effect.map(alone.nodes, (known) => known.length === 1),
          "2 minutes",
        )
        yield* alone.leave
      }),
    ),
  )
})
