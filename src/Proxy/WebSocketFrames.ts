/**
 * Follows the frame boundaries of one direction of a WebSocket byte stream (RFC 6455 §5.2) without reading
 * payloads: enough to tell where a frame may be inserted, so a draining node can end a pass-through WebSocket
 * with a close frame of its own rather than cutting it mid-frame.
 */
export class FrameBoundaries {
  /** Payload bytes left in the current frame. */
  private payloadLeft = 0
  /** The header being collected: its bytes so far and, once the first two are in, its full length. */
  private readonly header = Buffer.alloc(14)
  private headerRead = 0
  private headerLength = 2

  /** True between frames: a frame may be inserted here. */
  get atBoundary(): boolean {
    return this.payloadLeft === 0 && this.headerRead === 0
  }

  /** Takes in every byte of `chunk`. */
  feed(chunk: Buffer): void {
    let offset = 0
    while (offset < chunk.length) offset = this.step(chunk, offset)
  }

  /**
   * Takes in bytes from `offset` up to the end of the current frame (or of the chunk) and returns where it
   * stopped: call it until `atBoundary` to find how much of a chunk finishes the frame under way.
   */
  step(chunk: Buffer, offset: number): number {
    if (this.payloadLeft > 0) {
      const taken = Math.min(this.payloadLeft, chunk.length - offset)
      this.payloadLeft -= taken
      return offset + taken
    }
    while (offset < chunk.length && this.headerRead < this.headerLength) {
      this.header[this.headerRead++] = chunk[offset++] as number
      if (this.headerRead === 2) this.headerLength = headerLengthOf(this.header)
    }
    if (this.headerRead === this.headerLength) {
      this.payloadLeft = payloadLengthOf(this.header)
      this.headerRead = 0
      this.headerLength = 2
    }
    return offset
  }
}

const MASK_BIT = 0x80

const headerLengthOf = (header: Buffer): number => {
  const length7 = (header[1] as number) & 0x7f
  const extended = length7 === 126 ? 2 : length7 === 127 ? 8 : 0
  return 2 + extended + ((header[1] as number) & MASK_BIT ? 4 : 0)
}

const payloadLengthOf = (header: Buffer): number => {
  const length7 = (header[1] as number) & 0x7f
  if (length7 === 126) return header.readUInt16BE(2)
  // Beyond 2^53 a length is nonsense anyway; the pipe then simply never finds a boundary and is cut.
  if (length7 === 127) return header.readUInt32BE(2) * 0x1_0000_0000 + header.readUInt32BE(6)
  return length7
}

const GOING_AWAY = 1001

/** A close frame with status 1001 (Going Away) as a server sends it: unmasked. */
export const goingAwayToClient = Buffer.from([0x88, 0x02, GOING_AWAY >> 8, GOING_AWAY & 0xff])

/** The same as a client must send it: masked (with a zero key, which leaves the payload as it is). */
export const goingAwayToServer = Buffer.from([0x88, 0x82, 0, 0, 0, 0, GOING_AWAY >> 8, GOING_AWAY & 0xff])
