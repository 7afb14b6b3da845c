import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Logger, Option, TestClock } from "effect"
import { makeKeyring } from "../src/ClusterKeys.js"
import * as Seal from "../src/Gossip/Seal.js"
import { type Handler, type Transport, TransportError } from "../src/Gossip/Transport.js"

const [keyA, keyB] = makeKeyring(["a".repeat(32), "b".repeat(32)]).subkeys("gossip") as [Buffer, Buffer]
const text = (bytes: Uint8Array) => Buffer.from(bytes).toString()
const bytes = (value: string) => Buffer.from(value)
/** Any time after the epoch; the tests start each node at it. */
const start = 1_700_000_000_000

/**
 * One node's side of the wire: the sealing wrapper over a transport the test drives by hand. What reaches the
 * gossip engine is recorded; requests are answered with "re: <request>".
 */
const endpoint = (
  keys: ReadonlyArray<Buffer> | undefined,
  rawRequest: Transport["request"] = (address) =>
    Effect.fail(new TransportError({ reason: "unreachable", address })),
  options?: Seal.Options,
) =>
  Effect.gen(function* () {
    let served: Handler | undefined
    const sent: Array<Uint8Array> = []
    const received: Array<string> = []
    const sealed = yield* Seal.make(
      {
        address: "10.0.0.1:8003",
        send: (_address, packet) => Effect.sync(() => void sent.push(packet)),
        request: rawRequest,
        serve: (handler) =>
          Effect.sync(() => {
            served = handler
          }),
      },
      keys,
      options,
    )
    yield* sealed.transport.serve({
      packet: (packet) => Effect.sync(() => void received.push(text(packet))),
      request: (payload) => Effect.succeed(Option.some(bytes(`re: ${text(payload)}`))),
    })
    const handler = served as Handler
    return {
      sealed,
      sent,
      received,
      /** A datagram arriving from the network. */
      deliver: (packet: Uint8Array) => handler.packet(packet, "10.0.0.9:8003"),
      /** A request arriving from the network, and the raw answer written back. */
      answer: (payload: Uint8Array) => handler.request(payload, "10.0.0.9:8003"),
      /** Reaches this endpoint's request handler, as a stream would. */
      asPeer: (_address: string, payload: Uint8Array) =>
        Effect.flatMap(handler.request(payload, "10.0.0.2:8003"), (answer) =>
          Option.isSome(answer)
            ? Effect.succeed(answer.value)
            : Effect.fail(new TransportError({ reason: "closed", address: "10.0.0.1:8003" })),
        ),
      rejected: sealed.rejected,
    }
  })

const sealedAt = (key: Buffer, kind: Seal.Kind, message: string, now = start) =>
  Seal.seal(key, kind, bytes(message), now)

describe("seal and open", () => {
  it("round-trips with any key of the ring, and not with another key", () => {
    const envelope = sealedAt(keyA, "datagram", "hello")
    expect(envelope.length).toBe(5 + Seal.overhead)
    expect(envelope[0]).toBe(Seal.SEALED)
    const opened = Seal.open([keyB, keyA], "datagram", envelope)
    expect(opened === undefined ? undefined : text(opened.plain)).toBe("hello")
    expect(opened?.timestamp).toBe(start)
    expect(Seal.open([keyB], "datagram", envelope)).toBeUndefined()
    expect(Seal.open([], "datagram", envelope)).toBeUndefined()
  })

  it("encrypts: the message is not readable on the wire, and each seal uses a fresh nonce", () => {
    const first = sealedAt(keyA, "datagram", "endpoint:pay-ep")
    const second = sealedAt(keyA, "datagram", "endpoint:pay-ep")
    expect(text(first)).not.toContain("endpoint")
    expect(Buffer.from(Seal.nonceOf(first))).not.toEqual(Buffer.from(Seal.nonceOf(second)))
  })

  it("refuses a change to any byte: marker, timestamp, nonce, ciphertext or tag; and a truncated envelope", () => {
    const envelope = sealedAt(keyA, "datagram", "the quick brown fox")
    for (let i = 0; i < envelope.length; i++) {
      const tampered = Buffer.from(envelope)
      tampered[i] = (tampered[i] as number) ^ 0x01
      expect(Seal.open([keyA], "datagram", tampered), `byte ${i}`).toBeUndefined()
    }
    for (const length of [0, 1, Seal.overhead - 1, envelope.length - 1])
      expect(Seal.open([keyA], "datagram", envelope.subarray(0, length)), `length ${length}`).toBeUndefined()
  })

  it("binds the kind, and an answer to the nonce of its request", () => {
    const datagram = sealedAt(keyA, "datagram", "x")
    expect(Seal.open([keyA], "request", datagram)).toBeUndefined()
    const request = sealedAt(keyA, "request", "join")
    const otherRequest = sealedAt(keyA, "request", "join")
    const answer = Seal.seal(keyA, "answer", bytes("welcome"), start, Seal.nonceOf(request))
    expect(Seal.open([keyA], "answer", answer, Seal.nonceOf(request))).toBeDefined()
    expect(Seal.open([keyA], "answer", answer, Seal.nonceOf(otherRequest))).toBeUndefined()
    expect(Seal.open([keyA], "answer", answer)).toBeUndefined()
  })
})

describe("replay guard", () => {
  const nonce = (i: number) => Buffer.from([i >> 8, i & 0xff])
  const window = 30_000

  it("accepts a nonce once, within the window, and nothing stamped before the node started", () => {
    const fresh = Seal.replayGuard(window, 100, start)
    expect(fresh(nonce(1), start, start)).toBe("fresh")
    expect(fresh(nonce(1), start, start + 1000)).toBe("replay")
    const later = start + 10_000 + window
    expect(fresh(nonce(2), later - window - 1, later)).toBe("stale")
    expect(fresh(nonce(3), later + window + 1, later)).toBe("stale")
    expect(fresh(nonce(4), start - 1, start)).toBe("stale")
    expect(fresh(nonce(5), later - window, later)).toBe("fresh")
    expect(fresh(nonce(6), later + window, later)).toBe("fresh")
  })

  it("forgets expired nonces, which the window then refuses anyway", () => {
    const fresh = Seal.replayGuard(window, 100, start)
    expect(fresh(nonce(1), start, start)).toBe("fresh")
    expect(fresh(nonce(2), start + window + 1, start + window + 1)).toBe("fresh")
    expect(fresh(nonce(1), start, start + window + 1)).toBe("stale")
  })

  it("when full, forgets the oldest and refuses anything stamped at or before it, so it can never return", () => {
    const fresh = Seal.replayGuard(window, 3, start)
    for (let i = 0; i < 3; i++) expect(fresh(nonce(i), start + i, start + 10)).toBe("fresh")
    // The fourth evicts nonce 0 (stamped start).
    expect(fresh(nonce(3), start + 3, start + 10)).toBe("fresh")
    expect(fresh(nonce(0), start, start + 10)).toBe("stale")
    for (let i = 1; i < 4; i++) expect(fresh(nonce(i), start + i, start + 10)).toBe("replay")
    expect(fresh(nonce(9), start + 5, start + 10)).toBe("fresh")
  })
})

describe("the sealing transport", () => {
  it.scoped("seals what it sends, and hands authentic datagrams to gossip as plain messages", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(start)
      const a = yield* endpoint([keyA])
      const b = yield* endpoint([keyB, keyA])
      yield* a.sealed.transport.send("b", bytes("digest"))
      const [wire] = a.sent
      expect(wire?.[0]).toBe(Seal.SEALED)
      yield* b.deliver(wire as Uint8Array)
      expect(b.received).toEqual(["digest"])
      expect(Object.values(yield* b.rejected).every((count) => count === 0)).toBe(true)
    }),
  )

  it.scoped("drops, and counts by reason, what fails: wrong key, tampered, plain, replayed, stale", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(start)
      const node = yield* endpoint([keyA])
      const genuine = sealedAt(keyA, "datagram", "genuine")
      const tampered = Buffer.from(sealedAt(keyA, "datagram", "tampered"))
      tampered[tampered.length - 20] = (tampered[tampered.length - 20] as number) ^ 0x80
      for (const packet of [
        sealedAt(keyB, "datagram", "wrong key"),
        tampered,
        bytes('\u0001{"_tag":"Delta"}'),
        new Uint8Array(),
        genuine,
        genuine,
        sealedAt(keyA, "datagram", "old", start - 31_000),
        sealedAt(keyA, "request", "a request sent as a datagram"),
      ])
        yield* node.deliver(packet)
      expect(node.received).toEqual(["genuine"])
      expect(yield* node.rejected).toEqual({
        unauthenticated: 2,
        no_key: 0,
        bad_seal: 3,
        replay: 1,
        stale: 1,
      })
    }),
  )

  it.scoped("without keys, passes plain messages and drops sealed ones", () =>
    Effect.gen(function* () {
      const node = yield* endpoint(undefined)
      yield* node.sealed.transport.send("b", bytes("plain"))
      expect(node.sent.map(text)).toEqual(["plain"])
      yield* node.deliver(bytes("plain"))
      yield* node.deliver(sealedAt(keyA, "datagram", "sealed"))
      expect(node.received).toEqual(["plain"])
      expect((yield* node.rejected).no_key).toBe(1)
    }),
  )

  it.scoped("seals a request and its answer, bound together", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(start)
      const server = yield* endpoint([keyA])
      const client = yield* endpoint([keyB, keyA], server.asPeer)
      // Rotation: the client sends with keyB, which the server lacks, so it is refused.
      const refused = yield* Effect.flip(client.sealed.transport.request("10.0.0.1:8003", bytes("join")))
      expect(refused.message).toBe(
        "10.0.0.1:8003: refused: the peer has none of this node's keys (compare --gossip.secret-key)",
      )
      const rotated = yield* endpoint([keyA, keyB], server.asPeer)
      const answer = yield* rotated.sealed.transport.request("10.0.0.1:8003", bytes("join"))
      expect(text(answer)).toBe("re: join")
      expect((yield* server.rejected).bad_seal).toBe(1)
    }),
  )

  it.scoped("refuses an answer recorded from another exchange", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(start)
      const server = yield* endpoint([keyA])
      let recorded: Uint8Array | undefined
      const recording = yield* endpoint([keyA], (address, payload) =>
        Effect.tap(server.asPeer(address, payload), (answer) =>
          Effect.sync(() => {
            recorded = answer
          }),
        ),
      )
      yield* recording.sealed.transport.request("10.0.0.1:8003", bytes("join"))
      // An attacker in the middle answers the next request with the recorded answer.
      const victim = yield* endpoint([keyA], () => Effect.succeed(recorded as Uint8Array))
      const error = yield* Effect.flip(victim.sealed.transport.request("10.0.0.1:8003", bytes("join")))
      expect(error).toMatchObject({ reason: "unauthenticated" })
      expect((yield* victim.rejected).bad_seal).toBe(1)
    }),
  )

  it.scoped("tells a sender why its request was refused, and an unkeyed sender that a key is needed", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(start)
      const keyed = yield* endpoint([keyA])
      const unkeyed = yield* endpoint(undefined)
      const plainToKeyed = yield* endpoint(undefined, keyed.asPeer)
      const sealedToUnkeyed = yield* endpoint([keyA], unkeyed.asPeer)
      expect((yield* Effect.flip(plainToKeyed.sealed.transport.request("x", bytes("join")))).detail).toBe(
        "the peer requires --gossip.secret-key and this node sent an unsealed message",
      )
      expect((yield* Effect.flip(sealedToUnkeyed.sealed.transport.request("x", bytes("join")))).detail).toBe(
        "the peer has no --gossip.secret-key",
      )
      const replayed = sealedAt(keyA, "request", "join")
      expect(Option.isSome(yield* keyed.answer(replayed))).toBe(true)
      expect(Buffer.from(Option.getOrThrow(yield* keyed.answer(replayed)))).toEqual(
        Buffer.concat([Buffer.of(0x80), bytes("replay")]),
      )
    }),
  )

  it.scoped("warns at most once per reason per period, counting the ones it held back", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(start)
      const warnings: Array<Record<string, unknown>> = []
      const capture = Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ annotations, message }) => {
          warnings.push({ message, ...Object.fromEntries(annotations) })
        }),
      )
      const node = yield* endpoint([keyA])
      const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.provide(effect, capture)
      for (let i = 0; i < 5; i++) yield* run(node.deliver(sealedAt(keyB, "datagram", "forged")))
      yield* run(node.deliver(bytes("plain")))
      yield* TestClock.adjust("10 seconds")
      yield* run(node.deliver(sealedAt(keyB, "datagram", "forged", start + 10_000)))
      expect(warnings).toEqual([
        expect.objectContaining({ reason: "bad_seal", suppressed: 0, from: "10.0.0.9:8003" }),
        expect.objectContaining({ reason: "unauthenticated", suppressed: 0 }),
        expect.objectContaining({
          message: ["dropped gossip that failed authentication"],
          reason: "bad_seal",
          suppressed: 4,
        }),
      ])
      expect((yield* node.rejected).bad_seal).toBe(6)
    }),
  )

  it.scoped("never fails on what arrives", () =>
    Effect.gen(function* () {
      const node = yield* endpoint([keyA])
      for (const packet of [new Uint8Array(), Buffer.of(Seal.SEALED), Buffer.alloc(100, Seal.SEALED)]) {
        expect(Exit.isSuccess(yield* Effect.exit(node.deliver(packet)))).toBe(true)
        expect(Exit.isSuccess(yield* Effect.exit(node.answer(packet)))).toBe(true)
      }
    }),
  )
})
