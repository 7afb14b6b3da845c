import { randomBytes } from "node:crypto"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { MAX_FRAME_PAYLOAD, Opcode, WebSocketReader } from "../src/Tunnel/internal/WebSocketReader.js"
import { isViewOf, split } from "./support/chunks.js"
import { type ClientFrame, clientFrame } from "./support/webSocketFrames.js"

const reader = () => {
  const pieces: Array<Buffer> = []
  const controls: Array<{ opcode: number; payload: string }> = []
  const errors: Array<string> = []
  const r = new WebSocketReader(
    {
      onBinary: (piece) => pieces.push(piece),
      onControl: (opcode, payload) => controls.push({ opcode, payload: payload.toString("hex") }),
      onError: (reason) => errors.push(reason),
    },
    "client",
  )
  return { reader: r, pieces, controls, errors, binary: () => Buffer.concat(pieces) }
}

const zeroMask = Buffer.alloc(4)
const mask = fc.oneof(
  fc.constant(zeroMask),
  fc.uint8Array({ minLength: 4, maxLength: 4 }).map((bytes) => Buffer.from(bytes)),
)
const lengthBits = fc.constantFrom<7 | 16 | 64 | undefined>(undefined, 16, 64)

/** A binary message cut into frames (binary, then continuations), a control frame between some of them. */
const message = fc
  .record({
    fragments: fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 4 }),
    masks: fc.array(mask, { minLength: 4, maxLength: 4 }),
    bits: lengthBits,
    ping: fc.option(fc.uint8Array({ maxLength: 125 }), { nil: undefined }),
  })
  .map(({ fragments, masks, bits, ping }) => {
    const frames: Array<ClientFrame> = fragments.map((fragment, i) => ({
      opcode: i === 0 ? Opcode.Binary : Opcode.Continuation,
      fin: i === fragments.length - 1,
      payload: Buffer.from(fragment),
      mask: masks[i] as Buffer,
      ...(bits !== undefined && fragment.length < 0x1_0000 ? { lengthBits: bits } : {}),
    }))
    // Control frames may come in the middle of a fragmented message (RFC 6455 §5.4).
    if (ping !== undefined) frames.splice(1, 0, { opcode: Opcode.Ping, payload: Buffer.from(ping) })
    return { frames, payload: Buffer.concat(fragments), ping: ping && Buffer.from(ping).toString("hex") }
  })

describe("WebSocketReader", () => {
  it("delivers the right bytes however a stream of masked frames is split, each piece a view of a chunk", () => {
    fc.assert(
      fc.property(
        fc.array(message, { maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (messages, cuts) => {
          const bytes = Buffer.concat(messages.flatMap((m) => m.frames.map(clientFrame)))
          const chunks = split(bytes, cuts)
          const r = reader()
          for (const chunk of chunks) r.reader.push(chunk)
          expect(r.errors).toEqual([])
          expect(r.binary()).toEqual(Buffer.concat(messages.map((m) => m.payload)))
          for (const piece of r.pieces) expect(chunks.some((chunk) => isViewOf(piece, chunk))).toBe(true)
          const pings = messages.flatMap((m) => (m.ping === undefined ? [] : [m.ping]))
          expect(r.controls).toEqual(pings.map((payload) => ({ opcode: Opcode.Ping, payload })))
        },
      ),
    )
  })

  it("unmasks a payload split at every pair of offsets, header included", () => {
    const payload = randomBytes(150)
    const bytes = clientFrame({ opcode: Opcode.Binary, payload, mask: randomBytes(4) })
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j++) {
        const r = reader()
        for (const chunk of split(bytes, [i, j])) r.reader.push(chunk)
        if (!r.binary().equals(payload)) throw new Error(`wrong bytes when split at ${i} and ${j}`)
      }
    }
  })

  it("skips unmasking for an all-zero key, handing out the pushed bytes as they are", () => {
    const payload = randomBytes(1000)
    const bytes = clientFrame({ opcode: Opcode.Binary, payload, mask: zeroMask })
    const r = reader()
    r.reader.push(bytes)
    expect(r.binary()).toEqual(payload)
    expect(isViewOf(r.pieces[0] as Buffer, bytes)).toBe(true)
  })

  it("reads 7-, 16- and 64-bit lengths, minimal or not", () => {
    for (const [size, bits] of [
      [125, 7],
      [126, 16],
      [65_535, 16],
      [65_536, 64],
      [200_000, 64],
      [3, 16],
      [3, 64],
    ] as const) {
      const payload = randomBytes(size)
      const r = reader()
      r.reader.push(clientFrame({ opcode: Opcode.Binary, payload, lengthBits: bits }))
      expect(r.errors).toEqual([])
      expect(r.binary().equals(payload)).toBe(true)
    }
  })

  it("passes control frames on whole", () => {
    const r = reader()
    r.reader.push(
      Buffer.concat([
        clientFrame({ opcode: Opcode.Ping, payload: Buffer.from("a") }),
        clientFrame({ opcode: Opcode.Pong, payload: Buffer.alloc(0) }),
        clientFrame({ opcode: Opcode.Close, payload: Buffer.from([0x03, 0xe8]) }),
      ]),
    )
    expect(r.controls).toEqual([
      { opcode: Opcode.Ping, payload: "61" },
      { opcode: Opcode.Pong, payload: "" },
      { opcode: Opcode.Close, payload: "03e8" },
    ])
  })

  const rejects = (bytes: Buffer, reason: RegExp | string) => {
    const r = reader()
    const valid = clientFrame({ opcode: Opcode.Binary, payload: Buffer.from("ok") })
    r.reader.push(Buffer.concat([valid, bytes, valid]))
    r.reader.push(valid)
    expect(r.binary().toString()).toBe("ok")
    expect(r.errors).toHaveLength(1)
    expect(r.errors[0]).toMatch(reason)
  }

  it("rejects a text message", () => {
    rejects(clientFrame({ opcode: Opcode.Text, payload: Buffer.from("hi") }), /^text websocket message$/)
  })

  it("rejects an unmasked frame", () => {
    rejects(clientFrame({ opcode: Opcode.Binary, payload: Buffer.from("x"), mask: null }), /unmasked/)
  })

  it("reading a server's frames (the agent's side), takes unmasked frames and rejects a masked one", () => {
    const pieces: Array<Buffer> = []
    const controls: Array<number> = []
    const errors: Array<string> = []
    const fromServer = new WebSocketReader(
      {
        onBinary: (piece) => pieces.push(piece),
        onControl: (opcode) => controls.push(opcode),
        onError: (reason) => errors.push(reason),
      },
      "server",
    )
    const payload = randomBytes(70_000)
    const bytes = Buffer.concat([
      clientFrame({ opcode: Opcode.Binary, payload, mask: null }),
      clientFrame({ opcode: Opcode.Ping, payload: Buffer.from("p"), mask: null }),
    ])
    for (const chunk of split(bytes, [3, 100, 65_536])) fromServer.push(chunk)
    expect(errors).toEqual([])
    expect(Buffer.concat(pieces)).toEqual(payload)
    expect(controls).toEqual([Opcode.Ping])
    fromServer.push(clientFrame({ opcode: Opcode.Binary, payload: Buffer.from("x"), mask: zeroMask }))
    expect(errors).toEqual(["masked websocket frame from the server"])
    expect(Buffer.concat(pieces)).toEqual(payload)
  })

  it("rejects RSV bits", () => {
    for (const rsv of [0x40, 0x20, 0x10]) {
      rejects(clientFrame({ opcode: Opcode.Binary, payload: Buffer.from("x"), rsv }), /RSV bits/)
    }
  })

  it("rejects reserved opcodes", () => {
    for (const opcode of [3, 7, 0xb, 0xf]) {
      rejects(
        clientFrame({ opcode, payload: Buffer.alloc(0) }),
        new RegExp(`reserved websocket opcode ${opcode}`),
      )
    }
  })

  it("rejects control frames that are fragmented or longer than 125 bytes", () => {
    rejects(
      clientFrame({ opcode: Opcode.Ping, payload: Buffer.from("x"), fin: false }),
      /fragmented .*control/,
    )
    rejects(clientFrame({ opcode: Opcode.Ping, payload: Buffer.alloc(126) }), /control frame of 126 bytes/)
  })

  it("rejects a continuation without a message, and a new message inside a fragmented one", () => {
    rejects(
      clientFrame({ opcode: Opcode.Continuation, payload: Buffer.from("x") }),
      /continuation frame without/,
    )
    const r = reader()
    r.reader.push(clientFrame({ opcode: Opcode.Binary, payload: Buffer.from("a"), fin: false }))
    r.reader.push(clientFrame({ opcode: Opcode.Binary, payload: Buffer.from("b") }))
    expect(r.errors).toEqual(["websocket binary frame inside a fragmented message"])
  })

  it("rejects lengths above the maximum and 64-bit lengths with the top bit set", () => {
    const header = (length: bigint) => {
      const bytes = Buffer.alloc(14)
      bytes[0] = 0x80 | Opcode.Binary
      bytes[1] = 0x80 | 127
      bytes.writeBigUInt64BE(length, 2)
      return bytes
    }
    rejects(header(BigInt(MAX_FRAME_PAYLOAD + 1)), /16777217 bytes exceeds the maximum of 16777216/)
    rejects(header(1n << 63n), /most significant bit/)
  })

  it("never throws on garbage and stops at the first error", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 10 }), (chunks) => {
        const errors: Array<string> = []
        let afterError = 0
        const count = () => {
          if (errors.length > 0) afterError++
        }
        const r = new WebSocketReader(
          { onBinary: count, onControl: count, onError: (e) => errors.push(e) },
          "client",
        )
        for (const chunk of chunks) r.push(Buffer.from(chunk))
        expect(errors.length).toBeLessThanOrEqual(1)
        expect(afterError).toBe(0)
      }),
    )
  })
})
