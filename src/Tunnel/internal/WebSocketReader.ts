import bufferutil from "bufferutil"

/** RFC 6455 §5.2 opcodes. */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const

/** Control frames carry at most this many payload bytes (RFC 6455 §5.5). */
export const MAX_CONTROL_PAYLOAD = 125

/** Sanity cap on one frame's payload, like the yamux decoder's: anything larger is treated as corrupt. */
export const MAX_FRAME_PAYLOAD = 16 * 1024 * 1024

/** The longest header: 2 bytes, a 64-bit length and the masking key. */
const MAX_HEADER_SIZE = 14

const EMPTY = Buffer.alloc(0)

/** Header size, known from its second byte (mask bit and 7-bit length). */
const headerSize = (second: number): number => {
  const length7 = second & 0x7f
  return 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) + ((second & 0x80) !== 0 ? 4 : 0)
}

export interface WebSocketReaderHandlers {
  /** Payload bytes of binary messages, in order: views into the pushed chunks, unmasked in place. */
  readonly onBinary: (piece: Buffer) => void
  /** A complete close, ping or pong frame with its unmasked payload. */
  readonly onControl: (opcode: number, payload: Buffer) => void
  /** Called once with a human-readable reason; the reader ignores all input afterwards. */
  readonly onError: (reason: string) => void
}

/** Who sends the frames a reader reads: a client must mask every frame, a server must mask none (RFC 6455 §5.1). */
export type FrameSender = "client" | "server"

/**
 * Incremental parser of the frames a WebSocket peer sends (RFC 6455 §5), strict about everything its side
 * must check. Binary payload is never copied or joined: it is unmasked in place inside the pushed chunks, which
 * the reader therefore owns (a socket's read buffers qualify: nobody else holds them), and handed out as views.
 */
export class WebSocketReader {
  private readonly handlers: WebSocketReaderHandlers
  private readonly sender: FrameSender
  /** The start of a header that straddles chunks. */
  private readonly partial = Buffer.allocUnsafe(MAX_HEADER_SIZE)
  private partialLength = 0
  /** Inside a frame's payload (rather than between frames). */
  private inPayload = false
  private remaining = 0
  /** The masking key, rotated so that its first byte applies to the next payload byte. */
  private readonly mask = Buffer.alloc(4)
  /** False for an all-zero key (what Pico's agent sends), which needs no unmasking pass. */
  private masked = false
  /** A control frame's payload being collected; undefined in a data frame. */
  private control: Buffer | undefined
  private controlOpcode = 0
  /** A binary message has begun without its final frame: only continuation frames may follow. */
  private fragmented = false
  private halted = false

  constructor(handlers: WebSocketReaderHandlers, sender: FrameSender) {
    this.handlers = handlers
    this.sender = sender
  }

  /** Stop parsing; later pushes are ignored. */
  stop(): void {
    this.halted = true
  }

  /** Not re-entrant: handlers must not push into the same reader. */
  push(chunk: Buffer): void {
    let offset = 0
    while (offset < chunk.length && !this.halted) {
      offset = this.inPayload ? this.readPayload(chunk, offset) : this.readHeader(chunk, offset)
    }
  }

  private readHeader(chunk: Buffer, offset: number): number {
    const available = chunk.length - offset
    if (this.partialLength === 0 && available >= 2) {
      const size = headerSize(chunk[offset + 1] as number)
      if (available >= size) {
        this.parseHeader(chunk, offset)
        return offset + size
      }
    }
    const need = this.partialLength < 2 ? 2 : headerSize(this.partial[1] as number)
    const take = Math.min(need - this.partialLength, available)
    chunk.copy(this.partial, this.partialLength, offset, offset + take)
    this.partialLength += take
    if (this.partialLength >= 2 && this.partialLength === headerSize(this.partial[1] as number)) {
      this.partialLength = 0
      this.parseHeader(this.partial, 0)
    }
    return offset + take
  }

  private parseHeader(source: Buffer, offset: number): void {
    const first = source[offset] as number
    const second = source[offset + 1] as number
    let position = offset + 2
    let length = second & 0x7f
    if (length === 126) {
      length = source.readUInt16BE(position)
      position += 2
    } else if (length === 127) {
      const high = source.readUInt32BE(position)
      if (high >= 0x8000_0000) {
        this.fail("64-bit frame length with the most significant bit set")
        return
      }
      length = high * 0x1_0000_0000 + source.readUInt32BE(position + 4)
      position += 8
    }
    const opcode = first & 0x0f
    const invalid = this.invalidFrame(first, second, opcode, length)
    if (invalid !== undefined) {
      this.fail(invalid)
      return
    }
    if ((second & 0x80) === 0) this.masked = false
    else {
      source.copy(this.mask, 0, position, position + 4)
      this.masked = this.mask.readUInt32BE(0) !== 0
    }
    if (opcode >= Opcode.Close) {
      this.control = length === 0 ? EMPTY : Buffer.allocUnsafe(length)
      this.controlOpcode = opcode
    } else {
      this.control = undefined
      this.fragmented = (first & 0x80) === 0
    }
    this.remaining = length
    if (length > 0) this.inPayload = true
    else this.endFrame()
  }

  /** What is wrong with a frame header, if anything. */
  private invalidFrame(first: number, second: number, opcode: number, length: number): string | undefined {
    const final = (first & 0x80) !== 0
    if ((first & 0x70) !== 0) return "websocket frame with RSV bits set (no extension was negotiated)"
    const masked = (second & 0x80) !== 0
    if (this.sender === "client" && !masked) return "unmasked websocket frame from the client"
    if (this.sender === "server" && masked) return "masked websocket frame from the server"
    switch (opcode) {
      case Opcode.Text:
        return "text websocket message"
      case Opcode.Binary:
        if (this.fragmented) return "websocket binary frame inside a fragmented message"
        break
      case Opcode.Continuation:
        if (!this.fragmented) return "websocket continuation frame without a message to continue"
        break
      case Opcode.Close:
      case Opcode.Ping:
      case Opcode.Pong:
        if (!final) return "fragmented websocket control frame"
        if (length > MAX_CONTROL_PAYLOAD) {
          return `websocket control frame of ${length} bytes (at most ${MAX_CONTROL_PAYLOAD})`
        }
        return undefined
      default:
        return `reserved websocket opcode ${opcode}`
    }
    if (length > MAX_FRAME_PAYLOAD) {
      return `websocket frame of ${length} bytes exceeds the maximum of ${MAX_FRAME_PAYLOAD}`
    }
    return undefined
  }

  private readPayload(chunk: Buffer, offset: number): number {
    const take = Math.min(this.remaining, chunk.length - offset)
    const piece = chunk.subarray(offset, offset + take)
    if (this.masked) this.unmask(piece)
    this.remaining -= take
    const control = this.control
    if (control === undefined) this.handlers.onBinary(piece)
    else piece.copy(control, control.length - this.remaining - take)
    if (this.remaining === 0) this.endFrame()
    return offset + take
  }

  /** Unmasks a piece in place, then rotates the key so the next piece starts at its first byte again. */
  private unmask(piece: Buffer): void {
    const mask = this.mask
    bufferutil.unmask(piece, mask)
    const shift = (piece.length & 3) * 8
    if (shift === 0) return
    const key = mask.readUInt32BE(0)
    mask.writeUInt32BE(((key << shift) | (key >>> (32 - shift))) >>> 0, 0)
  }

  private endFrame(): void {
    this.inPayload = false
    const control = this.control
    if (control === undefined) return
    this.control = undefined
    this.handlers.onControl(this.controlOpcode, control)
  }

  private fail(reason: string): void {
    this.stop()
    this.handlers.onError(reason)
  }
}
