import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import fc from "fast-check"
import * as Message from "../src/Gossip/Message.js"

const from = { id: "pico-1-abcdefg", addr: "10.0.0.1:8003", heartbeat: 42 }

const delta = Message.Delta.make({
  from,
  nodes: [
    { id: "a", addr: "a:8003", heartbeat: 1, after: 0, entries: [["endpoint:x", "2", 1, 0]] },
    {
      id: "b",
      addr: "b:8003",
      heartbeat: 7,
      after: 3,
      entries: [
        ["gone", "", 4, 2],
        ["_internal:left", "", 5, 1],
      ],
    },
  ],
})

const withVersion = (version: number, json: string) => new Uint8Array([version, ...Buffer.from(json)])

const rejects = (bytes: Uint8Array) => expect(Either.isLeft(Message.decode(bytes))).toBe(true)

describe("Message", () => {
  it("round-trips every message kind, multi-node deltas included", () => {
    const digest = Message.Digest.make({
      from,
      nodes: [
        ["a", "a:8003", 3, 9, 0],
        ["dead", "d:8003", 0, 5, 2],
      ],
    })
    const join = Message.Join.make({ from, nodes: delta.nodes, digest: digest.nodes })
    const welcome = Message.Welcome.make({ from, nodes: delta.nodes, digest: digest.nodes })
    for (const message of [digest, delta, join, welcome, Message.Ack.make({ from })])
      expect(Message.decode(Message.encode(message))).toEqual(Either.right(message))
  })

  it("starts with the protocol version byte, then JSON", () => {
    const bytes = Message.encode(Message.Ack.make({ from }))
    expect(bytes[0]).toBe(1)
    expect(JSON.parse(Buffer.from(bytes.subarray(1)).toString())).toEqual({ _tag: "Ack", from })
  })

  it("rejects what is not a message of this version", () => {
    const ack = JSON.stringify({ _tag: "Ack", from })
    rejects(new Uint8Array())
    rejects(withVersion(0, ack))
    rejects(withVersion(2, ack))
    rejects(new Uint8Array([1, 0xff, 0xfe]))
    rejects(withVersion(1, "{"))
    rejects(withVersion(1, "null"))
    rejects(withVersion(1, JSON.stringify({ _tag: "Nope", from })))
    rejects(withVersion(1, JSON.stringify({ _tag: "Ack", from: { ...from, heartbeat: -1 } })))
    rejects(withVersion(1, JSON.stringify({ _tag: "Ack", from: { ...from, heartbeat: 1.5 } })))
    rejects(withVersion(1, JSON.stringify({ _tag: "Ack", from: { ...from, id: "" } })))
    rejects(withVersion(1, JSON.stringify({ _tag: "Digest", from, nodes: [["a", "a:1", 1, 1, 3]] })))
    const unordered = {
      ...delta.nodes[1],
      entries: [
        ["b", "", 5, 0],
        ["a", "", 4, 0],
      ],
    }
    rejects(withVersion(1, JSON.stringify({ ...delta, nodes: [unordered] })))
  })

  it("never throws on arbitrary bytes or arbitrary JSON", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        expect(Either.isEither(Message.decode(bytes))).toBe(true)
      }),
      { numRuns: 2000 },
    )
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        rejects(withVersion(1, JSON.stringify({ _tag: "Delta", from, nodes: [value] })))
        expect(Either.isEither(Message.decode(withVersion(1, JSON.stringify(value))))).toBe(true)
      }),
      { numRuns: 1000 },
    )
  })

  it("splits a large digest into datagrams that fit and together hold every row", () => {
    const rows: Array<Message.DigestRow> = Array.from({ length: 100 }, (_, i) => [
      `pico-1-node${String(i).padStart(3, "0")}`,
      `10.0.0.${i}:8003`,
      i * 1000,
      i * 77,
      i % 10 === 0 ? 2 : 0,
    ])
    const packets = Message.digestPackets(from, rows, 1400)
    expect(packets.length).toBeGreaterThan(3)
    const decoded = packets.map((packet) => {
      expect(packet.length).toBeLessThanOrEqual(1400)
      return Either.getOrThrow(Message.decode(packet))
    })
    expect(decoded.flatMap((message) => (message._tag === "Digest" ? message.nodes : []))).toEqual(rows)
    expect(Message.digestPackets(from, [], 1400)).toHaveLength(1)
  })
})
