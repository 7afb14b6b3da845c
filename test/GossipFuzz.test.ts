/**
 * The gossip decoder's fuzz target: arbitrary bytes, mutated valid messages and mutated sealed packets thrown at
 * the message decoder, at `Seal.open` and at the sealing transport. Nothing may throw, and nothing tampered with
 * may be accepted. Each property runs for at most `budget`, so the whole file takes a few seconds in CI.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit, Logger, LogLevel } from "effect"
import fc from "fast-check"
import { makeKeyring } from "../src/ClusterKeys.js"
import * as Message from "../src/Gossip/Message.js"
import * as Seal from "../src/Gossip/Seal.js"
import { sealedEndpoint } from "./support/sealedEndpoint.js"

const budget = { interruptAfterTimeLimit: 700, numRuns: 100_000 }
const keys = makeKeyring(["f".repeat(32), "g".repeat(32)]).subkeys("gossip")

// --- Valid messages ---

const text = fc.string({ maxLength: 24 })
const nodeId = fc.string({ minLength: 1, maxLength: 24 })
const count = fc.nat()
const sender = fc.record({ id: nodeId, addr: text, heartbeat: count })
const digestRow = fc.tuple(nodeId, text, count, count, fc.constantFrom(0 as const, 1 as const, 2 as const))
const nodeDelta = fc.record({
  id: nodeId,
  addr: text,
  heartbeat: count,
  after: count,
  // Versions strictly ascend, as the schema requires.
  entries: fc
    .array(fc.tuple(text, text, fc.constantFrom(0 as const, 1 as const, 2 as const, 3 as const)), {
      maxLength: 6,
    })
    .map((rows) => rows.map(([key, value, flags], i) => [key, value, i + 1, flags] as const)),
})
const message: fc.Arbitrary<Message.Message> = fc.oneof(
  fc.record({
    _tag: fc.constant("Digest" as const),
    from: sender,
    nodes: fc.array(digestRow, { maxLength: 5 }),
  }),
  fc.record({
    _tag: fc.constant("Delta" as const),
    from: sender,
    nodes: fc.array(nodeDelta, { maxLength: 3 }),
  }),
  fc.record({
    _tag: fc.constantFrom("Join" as const, "Welcome" as const),
    from: sender,
    nodes: fc.array(nodeDelta, { maxLength: 3 }),
    digest: fc.array(digestRow, { maxLength: 5 }),
  }),
  fc.record({ _tag: fc.constant("Ack" as const), from: sender }),
)

// --- Mutations ---

type Mutation =
  | { readonly kind: "flip"; readonly at: number; readonly bit: number }
  | { readonly kind: "set"; readonly at: number; readonly value: number }
  | { readonly kind: "truncate"; readonly at: number }
  | { readonly kind: "insert"; readonly at: number; readonly bytes: Uint8Array }

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
)

const mutate = (bytes: Uint8Array, change: Mutation): Buffer => {
  const copy = Buffer.from(bytes)
  const at = copy.length === 0 ? 0 : change.at % copy.length
  switch (change.kind) {
    case "flip":
      copy[at] = (copy[at] ?? 0) ^ (1 << change.bit)
      return copy
    case "set":
      copy[at] = change.value
      return copy
    case "truncate":
      return copy.subarray(0, at)
    case "insert":
      return Buffer.concat([copy.subarray(0, at), change.bytes, copy.subarray(at)])
  }
}

const kind = fc.constantFrom<Seal.Kind>("datagram", "request", "answer")

describe("gossip decoder fuzzing", () => {
  it("decodes arbitrary bytes and mutated messages without throwing, accepting only valid messages", () => {
    const decodesSafely = (bytes: Uint8Array) => {
      const decoded = Message.decode(bytes)
      // Whatever it accepts is a message that encodes and decodes back to itself.
      if (Either.isRight(decoded))
        expect(Message.decode(Message.encode(decoded.right))).toEqual(Either.right(decoded.right))
    }
    fc.assert(fc.property(fc.uint8Array({ maxLength: 1500 }), decodesSafely), budget)
    fc.assert(
      fc.property(message, fc.array(mutation, { minLength: 1, maxLength: 4 }), (original, changes) =>
        decodesSafely(changes.reduce<Uint8Array>(mutate, Message.encode(original))),
      ),
      budget,
    )
  })

  it("opens every sealed message and no tampered one", () => {
    fc.assert(
      fc.property(
        message,
        kind,
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        (original, as, changes) => {
          const plain = Message.encode(original)
          const sealed = Seal.seal(keys[1] as Buffer, as, plain, Date.now())
          const opened = Seal.open(keys, as, sealed)
          expect(opened && Message.decode(opened.plain)).toEqual(Either.right(original))
          const tampered = changes.reduce<Uint8Array>(mutate, sealed)
          fc.pre(!Buffer.from(tampered).equals(sealed))
          expect(Seal.open(keys, as, tampered)).toBeUndefined()
        },
      ),
      budget,
    )
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1500 }), kind, (bytes, as) => {
        expect(Seal.open(keys, as, bytes)).toBeUndefined()
        expect(Seal.open(keys, as, Buffer.concat([Buffer.of(Seal.SEALED), bytes]))).toBeUndefined()
      }),
      budget,
    )
  })

  it.scoped("drops what is garbage or tampered at the sealing transport, never failing", () =>
    Effect.gen(function* () {
      const node = yield* sealedEndpoint(keys)
      let dropped = 0
      const delivered = (packet: Uint8Array) => {
        const before = node.received.length
        const exit = Effect.runSyncExit(
          Effect.zipRight(node.deliver(packet), node.answer(packet)).pipe(
            Logger.withMinimumLogLevel(LogLevel.None),
          ),
        )
        expect(Exit.isSuccess(exit)).toBe(true)
        expect(node.received.length).toBe(before)
        dropped += 2
      }
      fc.assert(fc.property(fc.uint8Array({ maxLength: 1500 }), delivered), budget)
      fc.assert(
        fc.property(message, fc.array(mutation, { minLength: 1, maxLength: 4 }), (original, changes) => {
          const sealed = Seal.seal(keys[0] as Buffer, "datagram", Message.encode(original), Date.now())
          const tampered = changes.reduce<Uint8Array>(mutate, sealed)
          fc.pre(!Buffer.from(tampered).equals(sealed))
          delivered(tampered)
        }),
        budget,
      )
      const rejected = yield* node.rejected
      expect(Object.values(rejected).reduce((sum, value) => sum + value, 0)).toBe(dropped)
    }),
  )
})
