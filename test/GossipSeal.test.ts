import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Logger, Option, TestClock } from "effect"
import { type Keyring, makeKeyring } from "../src/ClusterKeys.js"
import * as Message from "../src/Gossip/Message.js"
import * as Seal from "../src/Gossip/Seal.js"
import * as Gossip from "../src/Gossip.js"
import { sealedEndpoint as endpoint } from "./support/sealedEndpoint.js"

/**
 * Advances the TestClock in 100 ms steps, letting woken fibers run between them: one big jump can outrun the
 * gossip rounds it wakes (each must schedule its next sleep before the clock passes it), which made convergence
 * depend on how busy the machine was.
 */
const advance = (millis: number) =>
  Effect.forEach(
    Array.from({ length: Math.ceil(millis / 100) }),
    () => Effect.zipRight(TestClock.adjust(100), Effect.yieldNow().pipe(Effect.repeatN(20))),
    { discard: true },
  )

const ringA = makeKeyring(["a".repeat(32)])
const ringB = makeKeyring(["b".repeat(32)])
const [keyA, keyB] = makeKeyring(["a".repeat(32), "b".repeat(32)]).subkeys("gossip") as [Buffer, Buffer]
const text = (bytes: Uint8Array) => Buffer.from(bytes).toString()
const bytes = (value: string) => Buffer.from(value)
/** Any time after the epoch; the tests start each node at it. */
const start = 1_700_000_000_000

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
      yield* advance(10_000)
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

describe("keyed clusters on the in-memory network", () => {
  /** A node at `n<i>:8003`; `sizes` records the length of every datagram it sends. */
  const node = (
    network: Gossip.MemoryNetwork.MemoryNetwork,
    i: number,
    keyring: Keyring | undefined,
    sizes: Array<number> = [],
  ) =>
    Effect.map(
      Layer.build(
        Gossip.layer(
          Effect.sync(() => {
            const transport = network.transport(`n${i}:8003`)
            return {
              ...transport,
              send: (address: string, packet: Uint8Array) => {
                sizes.push(packet.length)
                return transport.send(address, packet)
              },
            }
          }),
          { nodeId: `n${i}`, keyring, maxPacketSize: 512 },
        ),
      ),
      Context.get(Gossip.Gossip),
    )

  const ids = (of: Gossip.Gossip["Type"]) => Effect.map(of.nodes, (nodes) => nodes.map((n) => n.id).sort())

  it.scoped("converge sealed, within the datagram limit, and ignore a forged delta", () =>
    Effect.gen(function* () {
      const network = yield* Gossip.MemoryNetwork.make()
      const sizes: Array<number> = []
      const nodes = yield* Effect.forEach(
        Array.from({ length: 25 }, (_, i) => i),
        (i) => node(network, i, ringA, sizes),
      )
      const [a, b] = nodes as [Gossip.Gossip["Type"], Gossip.Gossip["Type"]]
      yield* Effect.forEach(nodes.slice(1), (joiner) => joiner.join(["n0:8003"]))
      // Peers are picked at random, so the round that completes the picture varies: wait for it, up to 60 rounds.
      const everyoneKnowsEveryone = Effect.map(Effect.forEach(nodes, ids), (views) =>
        views.every((view) => view.length === 25),
      )
      let waited = 0
      while (waited < 30_000 && !(yield* everyoneKnowsEveryone)) {
        yield* advance(500)
        waited += 500
      }
      for (const each of nodes) expect(yield* ids(each)).toHaveLength(25)
      // Twenty-five nodes' digests fill several datagrams each, every one within the limit once sealed.
      expect(Math.max(...sizes)).toBeGreaterThan(512 - Seal.overhead)
      expect(Math.max(...sizes)).toBeLessThanOrEqual(512)

      const forged = Message.encode({
        _tag: "Delta",
        from: { id: "evil-node", addr: "evil:8003", heartbeat: 1 },
        nodes: [
          {
            id: "evil-node",
            addr: "evil:8003",
            heartbeat: 1,
            after: 0,
            entries: [["endpoint:pay-ep", "1000000", 1, 0]],
          },
        ],
      })
      const attacker = network.transport("evil:8003")
      const now = yield* TestClock.currentTimeMillis
      yield* attacker.send("n0:8003", forged)
      yield* attacker.send("n0:8003", Seal.seal(keyB, "datagram", forged, now))
      yield* advance(1_000)
      for (const each of [a, b]) expect((yield* ids(each)).includes("evil-node")).toBe(false)
      expect((yield* a.stats).rejected).toMatchObject({ unauthenticated: 1, bad_seal: 1 })
      expect(a.keys).toBe(1)
    }),
  )

  it.scoped("refuse to join a node with another key, or none", () =>
    Effect.gen(function* () {
      const network = yield* Gossip.MemoryNetwork.make()
      yield* node(network, 0, ringA)
      const wrong = yield* node(network, 1, ringB)
      const unkeyed = yield* node(network, 2, undefined)
      expect((yield* Effect.flip(wrong.join(["n0:8003"]))).message).toBe(
        "n0:8003: refused: the peer has none of this node's keys (compare --gossip.secret-key)",
      )
      expect((yield* Effect.flip(unkeyed.join(["n0:8003"]))).message).toBe(
        "n0:8003: refused: the peer requires --gossip.secret-key and this node sent an unsealed message",
      )
      yield* advance(3_000)
      for (const joiner of [wrong, unkeyed])
        expect(yield* ids(joiner)).toEqual([`n${joiner === wrong ? 1 : 2}`])
    }),
  )
})
