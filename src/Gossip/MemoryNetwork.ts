/**
 * A simulated network for in-process clusters: endpoints by address, datagrams that can be dropped, delayed
 * (reordered) and duplicated, reliable streams, partitions, and nodes that vanish without a word. Delays and
 * random decisions use the Clock and Random services in scope (TestClock, or a `Simulation`'s virtual clock and
 * seeded Random), so runs can be reproduced.
 */
import { Duration, Effect, FiberSet, Option, Random, type Scope } from "effect"
import { type Handler, type Transport, TransportError } from "./Transport.js"

export interface Conditions {
  /** Probability that a datagram is lost. */
  readonly dropRate: number
  /** Probability that a delivered datagram arrives a second time. */
  readonly duplicateRate: number
  /** Each datagram, and each leg of a stream exchange, takes a uniformly random delay in [minDelay, maxDelay]. */
  readonly minDelay: Duration.DurationInput
  readonly maxDelay: Duration.DurationInput
}

export interface MemoryNetwork {
  /** The endpoint at the address; it receives while a handler is served on it. */
  readonly transport: (address: string) => Transport
  readonly setConditions: (conditions: Partial<Conditions>) => Effect.Effect<void>
  /** Splits the network: addresses in different groups cannot reach each other; unlisted ones form one more group. */
  readonly partition: (groups: ReadonlyArray<ReadonlyArray<string>>) => Effect.Effect<void>
  readonly heal: Effect.Effect<void>
  /** The endpoint disappears for good, as a crashed process: nothing reaches it and nothing it sends arrives. */
  readonly kill: (address: string) => Effect.Effect<void>
}

const perfect: Conditions = { dropRate: 0, duplicateRate: 0, minDelay: 0, maxDelay: 0 }

export const make = (initial: Partial<Conditions> = {}): Effect.Effect<MemoryNetwork, never, Scope.Scope> =>
  Effect.gen(function* () {
    let conditions: Conditions = { ...perfect, ...initial }
    const handlers = new Map<string, Handler>()
    const killed = new Set<string>()
    let groups = new Map<string, number>()
    // Deliveries are fibers of their own, so a handler never runs inside its sender's call.
    const inFlight = yield* FiberSet.make()

    const reachable = (from: string, to: string) =>
      !killed.has(from) && !killed.has(to) && (groups.get(from) ?? 0) === (groups.get(to) ?? 0)

    const chance = (probability: number) =>
      probability <= 0 ? Effect.succeed(false) : Effect.map(Random.next, (r) => r < probability)

    const delay = Effect.suspend(() => {
      const min = Duration.toMillis(conditions.minDelay)
      const max = Duration.toMillis(conditions.maxDelay)
      if (max <= 0) return Effect.void
      return Effect.flatMap(Random.next, (r) => Effect.sleep(Duration.millis(min + (max - min) * r)))
    })

    /** The handler at `to`, if `from` can reach it now. */
    const handlerFor = (from: string, to: string) =>
      Option.fromNullable(reachable(from, to) ? handlers.get(to) : undefined)

    const deliver = (from: string, to: string, packet: Uint8Array) =>
      Effect.zipRight(
        delay,
        Effect.suspend(() =>
          Option.match(handlerFor(from, to), {
            onNone: () => Effect.void,
            onSome: (handler) => handler.packet(packet.slice(), from),
          }),
        ),
      )

    const send = (from: string) => (to: string, packet: Uint8Array) =>
      Effect.gen(function* () {
        if (yield* chance(conditions.dropRate)) return
        const copies = (yield* chance(conditions.duplicateRate)) ? 2 : 1
        for (let i = 0; i < copies; i++) yield* FiberSet.run(inFlight, deliver(from, to, packet))
      })

    const request = (from: string) => (to: string, payload: Uint8Array) =>
      Effect.gen(function* () {
        yield* delay
        const handler = handlerFor(from, to)
        if (Option.isNone(handler)) return yield* new TransportError({ reason: "unreachable", address: to })
        const answer = yield* handler.value.request(payload.slice(), from)
        yield* delay
        if (Option.isNone(answer) || !reachable(from, to))
          return yield* new TransportError({ reason: "closed", address: to })
        return answer.value
      })

    const transport = (address: string): Transport => ({
      address,
      send: send(address),
      request: request(address),
      serve: (handler) =>
        Effect.acquireRelease(
          Effect.sync(() => void handlers.set(address, handler)),
          () => Effect.sync(() => void handlers.delete(address)),
        ),
    })

    return {
      transport,
      setConditions: (changes) =>
        Effect.sync(() => {
          conditions = { ...conditions, ...changes }
        }),
      partition: (split) =>
        Effect.sync(() => {
          groups = new Map(
            split.flatMap((addresses, i) => addresses.map((address) => [address, i + 1] as const)),
          )
        }),
      heal: Effect.sync(() => {
        groups = new Map()
      }),
      kill: (address) => Effect.sync(() => void killed.add(address)),
    } satisfies MemoryNetwork
  })
