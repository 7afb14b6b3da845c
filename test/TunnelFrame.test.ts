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
} from "../src/Tunnel/Frame.js"

interface Frame {
  readonly header: FrameHeader
  readonly payload: Buffer | undefined
}

const decoder = (maxPayload?: number) => {
  const frames: Array<Frame> = []
  const errors: Array<string> = []
  const decoder = new FrameDecoder(
    {
      onFrame: (header, payload) => frames.push({ header, payload: payload && Buffer.from(payload) }),
      onError: (reason) => errors.push(reason),
    },
    maxPayload,
  )
  return { decoder, frames, errors }
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

/** Cuts `bytes` at the given (sorted, deduplicated) offsets. */
const split = (bytes: Buffer, cuts: ReadonlyArray<number>): Array<Buffer> => {
  const offsets = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b)
  const chunks: Array<Buffer> = []
  let start = 0
  for (const offset of [...offsets, bytes.length]) {
    chunks.push(bytes.subarray(start, offset))
    start = offset
  }
  return chunks
}

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
    const payloads: Array<Buffer> = []
    const d = new FrameDecoder({
      onFrame: (_, payload) => payload && payloads.push(payload),
      onError: () => {},
    })
    const chunk = Buffer.concat([encodeHeader(FrameType.Data, 0, 1, 3), Buffer.from("abc")])
    d.push(chunk)
    expect(payloads[0]?.toString()).toBe("abc")
    expect(payloads[0]?.buffer).toBe(chunk.buffer)
  })

  it("joins a payload that straddles chunks", () => {
    const { decoder: d, frames } = decoder()
    const bytes = Buffer.concat([encodeHeader(FrameType.Data, 0, 7, 6), Buffer.from("abcdef")])
    d.push(bytes.subarray(0, 5))
    d.push(bytes.subarray(5, 14))
    expect(frames).toEqual([])
    d.push(bytes.subarray(14))
    expect(frames.map((frame) => frame.payload?.toString())).toEqual(["abcdef"])
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

  it("rejects a Data payload above the maximum", () => {
    rejects(encodeHeader(FrameType.Data, 0, 1, 1025), /1025 bytes exceeds the maximum of 1024/, 1024)
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
