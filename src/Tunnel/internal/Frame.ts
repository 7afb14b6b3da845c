/**
 * yamux frame codec (hashicorp yamux spec): a 12-byte big-endian header
 *
 *   version u8 | type u8 | flags u16 | stream id u32 | length u32
 *
 * followed, for Data frames only, by `length` payload bytes.
 */

export const PROTOCOL_VERSION = 0
export const HEADER_SIZE = 12

export const FrameType = {
  Data: 0,
  WindowUpdate: 1,
  Ping: 2,
  GoAway: 3,
} as const
export type FrameType = (typeof FrameType)[keyof typeof FrameType]

export const Flag = {
  SYN: 0x1,
  ACK: 0x2,
  FIN: 0x4,
  RST: 0x8,
} as const

export const GoAwayCode = {
  Normal: 0,
  ProtocolError: 1,
  InternalError: 2,
} as const

/** The window every stream starts with in both directions, before any WindowUpdate. */
export const DEFAULT_WINDOW = 256 * 1024

/** Sanity cap on an incoming Data payload: anything larger is treated as a corrupt stream. */
export const MAX_DECODE_PAYLOAD = 16 * 1024 * 1024

export const MAX_STREAM_ID = 0xffff_ffff

export interface FrameHeader {
  readonly type: FrameType
  readonly flags: number
  readonly streamId: number
  readonly length: number
}

export const writeHeader = (
  target: Buffer,
  offset: number,
  type: FrameType,
  flags: number,
  streamId: number,
  length: number,
): void => {
  target[offset] = PROTOCOL_VERSION
  target[offset + 1] = type
  target.writeUInt16BE(flags, offset + 2)
  target.writeUInt32BE(streamId, offset + 4)
  target.writeUInt32BE(length, offset + 8)
}

export const encodeHeader = (type: FrameType, flags: number, streamId: number, length: number): Buffer => {
  const header = Buffer.allocUnsafe(HEADER_SIZE)
  writeHeader(header, 0, type, flags, streamId, length)
  return header
}

const typeNames = ["Data", "WindowUpdate", "Ping", "GoAway"] as const
export const frameTypeName = (type: FrameType): string => typeNames[type]

const frameTypes: ReadonlyArray<FrameType | undefined> = [
  FrameType.Data,
  FrameType.WindowUpdate,
  FrameType.Ping,
  FrameType.GoAway,
]

const EMPTY = Buffer.alloc(0)

export interface FrameHandlers {
  /** Every frame but Data. */
  readonly onFrame: (header: FrameHeader) => void
  /**
   * A Data frame's payload, piece by piece as it arrives: each piece is a view into a pushed chunk, never a
   * copy. `first` and `last` mark the frame's first and last piece; an empty payload comes as one empty piece
   * with both set. Pieces of one frame are delivered in order, with no other frame in between.
   */
  readonly onData: (header: FrameHeader, piece: Buffer, first: boolean, last: boolean) => void
  /** Called once with a human-readable reason; the decoder ignores all input afterwards. */
  readonly onError: (reason: string) => void
}

/**
 * Incremental decoder: feed it arbitrary chunks of the byte stream. Payloads are handed out as views into the
 * chunks, in pieces when they straddle chunks: joining them would copy every byte of a large frame once more
 * (and allocate a buffer for it). Only a header straddling chunks is copied, into a 12-byte scratch buffer.
 * Pushed chunks must not be mutated afterwards.
 */
export class FrameDecoder {
  private readonly handlers: FrameHandlers
  private readonly maxPayload: number
  /** Header of the Data frame whose payload is being delivered. */
  private header: FrameHeader | undefined
  /** Payload bytes of `header` still to come. */
  private remaining = 0
  /** The start of a header that straddles chunks. */
  private readonly partial = Buffer.allocUnsafe(HEADER_SIZE)
  private partialLength = 0
  private halted = false

  constructor(handlers: FrameHandlers, maxPayload: number = MAX_DECODE_PAYLOAD) {
    this.handlers = handlers
    this.maxPayload = maxPayload
  }

  get stopped(): boolean {
    return this.halted
  }

  /** Stop decoding; later pushes are ignored and a partial frame is dropped. */
  stop(): void {
    this.halted = true
    this.header = undefined
    this.partialLength = 0
  }

  /** Not re-entrant: handlers must not push into the same decoder. */
  push(chunk: Buffer): void {
    const end = chunk.length
    let offset = 0
    while (offset < end && !this.halted) {
      const header = this.header
      if (header !== undefined) {
        const take = Math.min(this.remaining, end - offset)
        const first = this.remaining === header.length
        this.remaining -= take
        const last = this.remaining === 0
        if (last) this.header = undefined
        this.handlers.onData(header, chunk.subarray(offset, offset + take), first, last)
        offset += take
      } else if (this.partialLength === 0 && end - offset >= HEADER_SIZE) {
        this.parseHeader(chunk, offset)
        offset += HEADER_SIZE
      } else {
        const take = Math.min(HEADER_SIZE - this.partialLength, end - offset)
        chunk.copy(this.partial, this.partialLength, offset, offset + take)
        this.partialLength += take
        offset += take
        if (this.partialLength < HEADER_SIZE) return
        this.partialLength = 0
        this.parseHeader(this.partial, 0)
      }
    }
  }

  private parseHeader(source: Buffer, offset: number): void {
    const version = source[offset] as number
    const rawType = source[offset + 1] as number
    const flags = source.readUInt16BE(offset + 2)
    const streamId = source.readUInt32BE(offset + 4)
    const length = source.readUInt32BE(offset + 8)
    const type = frameTypes[rawType]
    if (version !== PROTOCOL_VERSION || type === undefined) {
      this.fail(
        version !== PROTOCOL_VERSION
          ? `unsupported yamux version ${version}`
          : `unknown frame type ${rawType}`,
      )
      return
    }
    const invalid = this.invalidFrame(type, streamId, length)
    if (invalid !== undefined) {
      this.fail(invalid)
      return
    }
    const header: FrameHeader = { type, flags, streamId, length }
    if (type !== FrameType.Data) this.handlers.onFrame(header)
    else if (length === 0) this.handlers.onData(header, EMPTY, true, true)
    else {
      this.header = header
      this.remaining = length
    }
  }

  private invalidFrame(type: FrameType, streamId: number, length: number): string | undefined {
    if (type === FrameType.Data && length > this.maxPayload) {
      return `Data frame payload of ${length} bytes exceeds the maximum of ${this.maxPayload}`
    }
    if ((type === FrameType.Ping || type === FrameType.GoAway) && streamId !== 0) {
      return `${frameTypeName(type)} frame on stream ${streamId} (must be 0)`
    }
    return undefined
  }

  private fail(reason: string): void {
    this.stop()
    this.handlers.onError(reason)
  }
}

/** Receives a finished batch; calls `release` once the bytes are on their way so the buffer can be reused. */
export type BatchSink = (batch: Buffer, release: () => void) => void

/** Spare batch buffers kept for reuse; more than this in flight are left to the garbage collector. */
const SPARE_BATCHES = 16

/**
 * Serializes frames into large batches. Everything framed until `flush()` leaves as one buffer, so
 * frames produced in the same tick (many streams, window updates, pings) become a single transport
 * write: each write is a WebSocket message with its own header, masking and syscall, which costs
 * far more than the one copy of each payload byte into the batch. A batch is capped at `capacity`
 * bytes (then handed to the sink early) to bound message size and receiver-side reassembly.
 *
 * Batch buffers are recycled once the transport has written them: at hundreds of MB/s, a fresh
 * buffer per batch makes V8 run full collections for "external memory pressure" back to back.
 */
export class FrameEncoder {
  private readonly sink: BatchSink
  private readonly capacity: number
  private readonly spares: Array<Buffer> = []
  private buffer: Buffer | undefined
  private position = 0

  /** `largestFrame` is the biggest frame (header + payload) that will ever be encoded. */
  constructor(sink: BatchSink, largestFrame: number, batchSize = 256 * 1024) {
    this.sink = sink
    this.capacity = Math.max(batchSize, largestFrame)
  }

  /** Appends a frame; for Data frames `length` bytes are copied from `payload` at `payloadStart`. */
  frame(
    type: FrameType,
    flags: number,
    streamId: number,
    length: number,
    payload?: Buffer,
    payloadStart = 0,
  ): void {
    const size = payload === undefined ? HEADER_SIZE : HEADER_SIZE + length
    if (this.position + size > this.capacity) this.flush()
    this.buffer ??= this.spares.pop() ?? Buffer.allocUnsafeSlow(this.capacity)
    writeHeader(this.buffer, this.position, type, flags, streamId, length)
    if (payload !== undefined)
      payload.copy(this.buffer, this.position + HEADER_SIZE, payloadStart, payloadStart + length)
    this.position += size
  }

  flush(): void {
    const buffer = this.buffer
    const used = this.position
    // A batch buffer exists exactly while frames are waiting in it.
    if (buffer === undefined) return
    this.buffer = undefined
    this.position = 0
    let released = false
    this.sink(buffer.subarray(0, used), () => {
      if (released) return
      released = true
      if (this.spares.length < SPARE_BATCHES) this.spares.push(buffer)
    })
  }
}
