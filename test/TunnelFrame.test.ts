import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  encodeHeader,
  Flag,
  FrameDecoder,
  FrameEncoder,
  type FrameHeader,
  FrameType,
  HEADER_SIZE,
  writeHeader,
} from "../src/Tunnel/internal/Frame.js"
import { isViewOf, split } from "./support/chunks.js"

interface Frame {
  readonly header: FrameHeader
  readonly payload: Buffer | undefined
}

interface Piece {
  readonly header: FrameHeader
  readonly piece: Buffer
  readonly first: boolean
  readonly last: boolean
}

/** Decodes into whole frames (Data pieces joined) and records every Data piece as handed out. */
const decoder = (maxPayload?: number) => {
  const frames: Array<Frame> = []
  const pieces: Array<Piece> = []
  const errors: Array<string> = []
  let payload: Array<Buffer> = []
  const decoder = new FrameDecoder(
    {
      onFrame: (header) => frames.push({ header, payload: undefined }),
      onData: (header, piece, first, last) => {
        pieces.push({ header, piece, first, last })
        payload.push(Buffer.from(piece))
        if (!last) return
        frames.push({ header, payload: Buffer.concat(payload) })
        payload = []
      },
      onError: (reason) => errors.push(reason),
    },
    maxPayload,
  )
  return { decoder, frames, pieces, errors }
}

const encodeFrame = (frame: Frame): Buffer => {
  const { type, flags, streamId, length } = frame.header
  const header = encodeHeader(type, flags, streamId, length)
  return frame.payload === undefined ? header : Buffer.concat([header, frame.payload])
}

const u32 = fc.integer({ min: 0, max: 0xffff_ffff })

const arbitraryFrame: fc.Arbitrary<Frame> = fc.oneof(
  fc
    .record({
      flags: fc.integer({ min: 0, max: 15 }),
      streamId: u32,
      payload: fc.uint8Array({ maxLength: 300 }),
    })
    .map(({ flags, streamId, payload }) => ({
      header: { type: FrameType.Data, flags, streamId, length: payload.length },
      payload: Buffer.from(payload),
    })),
  fc.record({ flags: fc.integer({ min: 0, max: 15 }), streamId: u32, length: u32 }).map((header) => ({
    header: { type: FrameType.WindowUpdate, ...header },
    payload: undefined,
  })),
  fc.record({ flags: fc.constantFrom(Flag.SYN, Flag.ACK), length: u32 }).map(({ flags, length }) => ({
    header: { type: FrameType.Ping, flags, streamId: 0, length },
    payload: undefined,
  })),
  fc.constantFrom(0, 1, 2).map((code) => ({
    header: { type: FrameType.GoAway, flags: 0, streamId: 0, length: code },
    payload: undefined,
  })),
)

const frameOf = (type: FrameType, streamId: number, payload: Buffer): Frame => ({
  header: { type, flags: 0, streamId, length: payload.length },
  payload,
})

describe("frame header", () => {
  it("encodes the documented example", () => {
    expect(encodeHeader(FrameType.WindowUpdate, Flag.SYN, 1, 0).toString("hex")).toBe(
      "000100010000000100000000",
    )
    expect(encodeHeader(FrameType.Data, Flag.FIN, 0x0102_0304, 5).toString("hex")).toBe(
      "000000040102030400000005",
    )
    expect(encodeHeader(FrameType.GoAway, 0, 0, 1).toString("hex")).toBe("000300000000000000000001")
  })

  it("writes into a buffer at an offset", () => {
    const target = Buffer.alloc(HEADER_SIZE + 3, 0xff)
    writeHeader(target, 3, FrameType.Ping, Flag.ACK, 0, 0xdead_beef)
    expect(target.toString("hex")).toBe("ffffff0002000200000000deadbeef")
  })
})

describe("FrameDecoder", () => {
  it("round-trips arbitrary frames however the byte stream is chunked", () => {
    fc.assert(
      fc.property(
        fc.array(arbitraryFrame, { maxLength: 30 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (frames, cuts) => {
          const bytes = Buffer.concat(frames.map(encodeFrame))
          const { decoder: d, frames: decoded, errors } = decoder()
          for (const chunk of split(bytes, cuts)) d.push(chunk)
          expect(errors).toEqual([])
          expect(decoded).toEqual(frames)
        },
      ),
    )
  })

  it("hands out payloads that lie inside one chunk as views, without copying", () => {
    const { decoder: d, pieces } = decoder()
    const chunk = Buffer.concat([encodeHeader(FrameType.Data, 0, 1, 3), Buffer.from("abc")])
    d.push(chunk)
    expect(pieces.map(({ piece, first, last }) => [piece.toString(), first, last])).toEqual([
      ["abc", true, true],
    ])
    expect(isViewOf(pieces[0]?.piece as Buffer, chunk)).toBe(true)
  })

  it("hands out a payload that straddles chunks in pieces, as views, without joining them", () => {
    const { decoder: d, pieces } = decoder()
    const bytes = Buffer.concat([encodeHeader(FrameType.Data, Flag.FIN, 7, 6), Buffer.from("abcdef")])
    const chunks = [bytes.subarray(0, 5), bytes.subarray(5, 14), bytes.subarray(14)].map((c) =>
      Buffer.from(c),
    )
    d.push(chunks[0] as Buffer)
    expect(pieces).toEqual([])
    d.push(chunks[1] as Buffer)
    d.push(chunks[2] as Buffer)
    expect(pieces.map(({ piece, first, last }) => [piece.toString(), first, last])).toEqual([
      ["ab", true, false],
      ["cdef", false, true],
    ])
    expect(isViewOf(pieces[0]?.piece as Buffer, chunks[1] as Buffer)).toBe(true)
    expect(isViewOf(pieces[1]?.piece as Buffer, chunks[2] as Buffer)).toBe(true)
    expect(pieces.every(({ header }) => header.streamId === 7 && header.flags === Flag.FIN)).toBe(true)
  })

  it("delivers the same bytes per stream however Data frames are chunked, each piece a view of a chunk", () => {
    const dataFrame = fc
      .record({ streamId: fc.integer({ min: 1, max: 4 }), payload: fc.uint8Array({ maxLength: 200 }) })
      .map(({ streamId, payload }) => frameOf(FrameType.Data, streamId, Buffer.from(payload)))
    fc.assert(
      fc.property(
        fc.array(dataFrame, { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 60 }),
        (frames, cuts) => {
          const bytes = Buffer.concat(frames.map(encodeFrame))
          const chunks = split(bytes, cuts)
          const { decoder: d, pieces, errors } = decoder()
          for (const chunk of chunks) d.push(chunk)
          expect(errors).toEqual([])
          const received = new Map<number, Array<Buffer>>()
          let open: FrameHeader | undefined
          for (const { header, piece, first, last } of pieces) {
            // A frame's pieces come in one run: first ... last, nothing in between.
            expect(first).toBe(open === undefined)
            if (first) open = header
            expect(header).toBe(open)
            if (last) open = undefined
            expect(piece.length > 0 || (first && last)).toBe(true)
            expect(piece.length === 0 || chunks.some((chunk) => isViewOf(piece, chunk))).toBe(true)
            received.set(header.streamId, [...(received.get(header.streamId) ?? []), piece])
          }
          expect(open).toBeUndefined()
          for (const streamId of [1, 2, 3, 4]) {
            const sent = frames.filter((f) => f.header.streamId === streamId).map((f) => f.payload as Buffer)
            expect(Buffer.concat(received.get(streamId) ?? [])).toEqual(Buffer.concat(sent))
          }
        },
      ),
    )
  })

  it("never throws on garbage and stops at the first error", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 10 }), (chunks) => {
        const errors: Array<string> = []
        let framesAfterError = 0
        const d = new FrameDecoder(
          {
            onFrame: () => {
              if (errors.length > 0) framesAfterError++
            },
            onData: () => {
              if (errors.length > 0) framesAfterError++
            },
            onError: (reason) => errors.push(reason),
          },
          1024,
        )
        for (const chunk of chunks) d.push(Buffer.from(chunk))
        expect(errors.length).toBeLessThanOrEqual(1)
        expect(framesAfterError).toBe(0)
        expect(d.stopped).toBe(errors.length === 1)
      }),
    )
  })

  const rejects = (bytes: Buffer, reason: RegExp, maxPayload?: number) => {
    const { decoder: d, frames, errors } = decoder(maxPayload)
    const valid = encodeHeader(FrameType.Ping, Flag.SYN, 0, 1)
    d.push(Buffer.concat([valid, bytes, valid]))
    d.push(valid)
    expect(frames).toHaveLength(1)
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatch(reason)
  }

  it("rejects a nonzero version", () => {
    const bytes = encodeHeader(FrameType.Ping, Flag.SYN, 0, 1)
    bytes[0] = 1
    rejects(bytes, /unsupported yamux version 1/)
  })

  it("rejects an unknown frame type", () => {
    const bytes = encodeHeader(FrameType.Ping, Flag.SYN, 0, 1)
    bytes[1] = 4
    rejects(bytes, /unknown frame type 4/)
  })

  it("rejects a Data payload above the maximum, and only above it", () => {
    rejects(encodeHeader(FrameType.Data, 0, 1, 1025), /1025 bytes exceeds the maximum of 1024/, 1024)
    const { decoder: d, frames, errors } = decoder(1024)
    d.push(encodeFrame(frameOf(FrameType.Data, 1, Buffer.alloc(1024))))
    expect([frames.length, errors]).toEqual([1, []])
  })

  it("rejects Ping and GoAway on a nonzero stream", () => {
    rejects(encodeHeader(FrameType.Ping, Flag.SYN, 3, 1), /Ping frame on stream 3/)
    rejects(encodeHeader(FrameType.GoAway, 0, 2, 0), /GoAway frame on stream 2/)
  })
})

describe("FrameEncoder", () => {
  it("batches frames and splits batches at the capacity", () => {
    fc.assert(
      fc.property(fc.array(arbitraryFrame, { maxLength: 40 }), (frames) => {
        const batches: Array<Buffer> = []
        const encoder = new FrameEncoder((batch) => batches.push(batch), HEADER_SIZE + 300, 512)
        for (const { header, payload } of frames) {
          encoder.frame(header.type, header.flags, header.streamId, header.length, payload)
        }
        encoder.flush()
        for (const batch of batches) expect(batch.length).toBeLessThanOrEqual(512)
        const { decoder: d, frames: decoded } = decoder()
        for (const batch of batches) d.push(batch)
        expect(decoded).toEqual(frames)
      }),
    )
  })

  it("copies a payload slice and never reuses a batch it handed out", () => {
    const batches: Array<Buffer> = []
    const encoder = new FrameEncoder((batch) => batches.push(batch), 1024, 1024)
    const source = Buffer.from("xxhelloxx")
    encoder.frame(FrameType.Data, 0, 1, 5, source, 2)
    encoder.flush()
    const first = Buffer.from(batches[0] as Buffer)
    encoder.frame(FrameType.Data, 0, 1, 9, source)
    encoder.flush()
    expect(batches[0]).toEqual(first)
    expect(first.subarray(HEADER_SIZE).toString()).toBe("hello")
    expect(batches).toHaveLength(2)
  })
})

describe("FrameEncoder batches", () => {
  /** An encoder of Ping frames whose batches, and their release callbacks, are kept. */
  const pings = (largestFrame: number, batchSize?: number) => {
    const batches: Array<{ readonly batch: Buffer; readonly release: () => void }> = []
    const encoder = new FrameEncoder(
      (batch, release) => batches.push({ batch, release }),
      largestFrame,
      batchSize,
    )
    const send = (count: number) => {
      for (let i = 0; i < count; i++) encoder.frame(FrameType.Ping, Flag.SYN, 0, i)
      encoder.flush()
    }
    return { encoder, batches, send }
  }

  it("fill up to exactly their size, 256 KiB unless told", () => {
    const small = pings(HEADER_SIZE, 2 * HEADER_SIZE)
    small.send(3)
    expect(small.batches.map(({ batch }) => batch.length)).toEqual([24, 12])
    const fullSize = pings(HEADER_SIZE)
    const fit = Math.floor((256 * 1024) / HEADER_SIZE)
    fullSize.send(fit + 1)
    expect(fullSize.batches.map(({ batch }) => batch.length)).toEqual([fit * HEADER_SIZE, HEADER_SIZE])
  })

  it("grow to hold the largest frame whole", () => {
    const batches: Array<Buffer> = []
    const encoder = new FrameEncoder((batch) => batches.push(batch), HEADER_SIZE + 1000, 512)
    const payload = Buffer.alloc(1000, 7)
    encoder.frame(FrameType.Data, 0, 1, payload.length, payload)
    encoder.flush()
    expect(batches).toEqual([Buffer.concat([encodeHeader(FrameType.Data, 0, 1, 1000), payload])])
  })

  it("reuse a released batch's memory, however often it is released, keeping at most 16", () => {
    const { batches, send } = pings(HEADER_SIZE, HEADER_SIZE)
    send(1)
    const first = batches[0] as (typeof batches)[number]
    first.release()
    first.release()
    send(2)
    const memory = batches.map(({ batch }) => batch.buffer)
    // Released twice, the first batch's memory still backs one batch at a time.
    expect(memory).toEqual([first.batch.buffer, first.batch.buffer, expect.anything()])
    expect(memory[2]).not.toBe(first.batch.buffer)
    batches.length = 0
    send(17)
    for (const { release } of batches) release()
    const released = new Set(batches.map(({ batch }) => batch.buffer))
    batches.length = 0
    send(17)
    expect(batches.filter(({ batch }) => released.has(batch.buffer))).toHaveLength(16)
  })
})
