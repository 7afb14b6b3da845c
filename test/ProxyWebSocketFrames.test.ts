import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { FrameBoundaries, goingAwayToClient, goingAwayToServer } from "../src/Proxy/WebSocketFrames.js"

/** A frame's header (RFC 6455 §5.2) for `length` payload bytes, with a zero masking key if `masked`. */
const header = (length: number, masked: boolean): Buffer => {
  const mask = masked ? 0x80 : 0
  const bytes =
    length < 126
      ? [0x82, mask | length]
      : length < 0x1_0000
        ? [0x82, mask | 126, length >> 8, length & 0xff]
        : [0x82, mask | 127, 0, 0, 0, 0, ...[24, 16, 8, 0].map((shift) => (length >>> shift) & 0xff)]
  return Buffer.from(masked ? [...bytes, 1, 2, 3, 4] : bytes)
}

const frameArbitrary = fc.record({
  // Each size of length field: 7 bits, 16 bits (126), 64 bits (127); the long ones seldom, as they are slow to step.
  length: fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0, max: 130 }) },
    { weight: 1, arbitrary: fc.constantFrom(65_535, 65_536) },
  ),
  masked: fc.boolean(),
})

describe("WebSocket frame boundaries", () => {
  it("are found after every frame and nowhere else, however the bytes are split", () => {
    fc.assert(
      fc.property(
        fc.array(frameArbitrary, { maxLength: 4 }),
        fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 17, max: 70_000 })),
        (frames, size) => {
          const bytes = Buffer.concat(
            frames.map(({ length, masked }) => Buffer.concat([header(length, masked), Buffer.alloc(length)])),
          )
          const ends = new Set<number>([0])
          for (const { length, masked } of frames)
            ends.add(Math.max(...ends) + header(length, masked).length + length)
          const boundaries = new FrameBoundaries()
          const found = new Set<number>([0])
          // Step through each chunk as a draining pipe does, noting every offset that ends a frame.
          for (let start = 0; start < bytes.length; start += size) {
            const chunk = bytes.subarray(start, start + size)
            for (let offset = 0; offset < chunk.length; ) {
              const next = boundaries.step(chunk, offset)
              if (next <= offset) throw new Error(`step made no progress at ${start + offset}`)
              offset = next
              if (boundaries.atBoundary) found.add(start + offset)
            }
          }
          expect(found).toEqual(ends)
        },
      ),
      { numRuns: 100 },
    )
  })

  it("stop at the end of the frame under way, and feed takes a whole chunk", () => {
    const two = Buffer.concat([header(3, false), Buffer.from("abc"), header(0, true)])
    const boundaries = new FrameBoundaries()
    expect(boundaries.step(two, 0)).toBe(2)
    expect(boundaries.atBoundary).toBe(false)
    expect(boundaries.step(two, 2)).toBe(5)
    expect(boundaries.atBoundary).toBe(true)
    boundaries.feed(two.subarray(5, 7))
    expect(boundaries.atBoundary).toBe(false)
    boundaries.feed(two.subarray(7))
    expect(boundaries.atBoundary).toBe(true)
  })

  it("read a 64-bit length's high word", () => {
    const boundaries = new FrameBoundaries()
    boundaries.feed(Buffer.from([0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0]))
    boundaries.feed(Buffer.alloc(65_536))
    expect(boundaries.atBoundary).toBe(false)
  })

  it("end with a close frame, Going Away (1001), masked as a client must", () => {
    expect([...goingAwayToClient]).toEqual([0x88, 0x02, 0x03, 0xe9])
    expect([...goingAwayToServer]).toEqual([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9])
  })
})
