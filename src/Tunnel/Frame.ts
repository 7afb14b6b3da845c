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
  /** `payload` is defined exactly for Data frames (possibly empty). It may be a view into a pushed chunk. */
  readonly onFrame: (header: FrameHeader, payload: Buffer | undefined) => void
  /** Called once with a human-readable reason; the decoder ignores all input afterwards. */
  readonly onError: (reason: string) => void
}

/**
 * Incremental decoder: feed it arbitrary chunks of the byte stream. Payloads that lie inside one
 * chunk are handed out as views (no copy); only a header or payload straddling chunks is copied,
 * once, when it completes. Pushed chunks must not be mutated afterwards.
 */
export class FrameDecoder {
  private readonly handlers: FrameHandlers
  private readonly maxPayload: number
  /** Header of a Data frame whose payload is still incomplete. */
  private header: FrameHeader | undefined
  /** Pieces of the incomplete header (when `header` is undefined) or payload. */
  private parts: Array<Buffer> = []
  private partsLength = 0
  private halted = false

  constructor(handlers: FrameHandlers, maxPayload: number = MAX_DECODE_PAYLOAD) {
    this.handlers = handlers
    this.maxPayload = maxPayload
  }

  get stopped(): boolean {
    return this.halted
  }

  /** Stop decoding; later pushes are ignored and buffered bytes are dropped. */
  stop(): void {
    this.halted = true
    this.parts = []
    this.partsLength = 0
    this.header = undefined
  }

  /** Not re-entrant: onFrame must not push into the same decoder. */
  push(chunk: Buffer): void {
    const end = chunk.length
    let offset = 0
    while (offset < end && !this.halted) {
      const header = this.header
      if (header === undefined) {
        if (this.partsLength === 0 && end - offset >= HEADER_SIZE) {
          this.parseHeader(chunk, offset)
          offset += HEADER_SIZE
        } else {
          offset += this.collect(chunk, offset, HEADER_SIZE)
          if (this.partsLength < HEADER_SIZE) return
          this.parseHeader(this.takeParts(HEADER_SIZE), 0)
        }
      } else if (this.partsLength === 0 && end - offset >= header.length) {
        this.header = undefined
        this.handlers.onFrame(header, chunk.subarray(offset, offset + header.length))
        offset += header.length
      } else {
        offset += this.collect(chunk, offset, header.length)
        if (this.partsLength < header.length) return
        this.header = undefined
        this.handlers.onFrame(header, this.takeParts(header.length))
      }
    }
  }

  /** Buffers up to `need - partsLength` bytes of `chunk` from `offset`; returns how many were taken. */
  private collect(chunk: Buffer, offset: number, need: number): number {
    const take = Math.min(need - this.partsLength, chunk.length - offset)
    this.parts.push(chunk.subarray(offset, offset + take))
    this.partsLength += take
    return take
  }

  private takeParts(length: number): Buffer {
    const parts = this.parts
    const joined = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, length)
    this.parts = []
    this.partsLength = 0
    return joined
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
    if (type !== FrameType.Data) this.handlers.onFrame(header, undefined)
    else if (length === 0) this.handlers.onFrame(header, EMPTY)
    else this.header = header
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
    if (buffer === undefined || used === 0) return
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
