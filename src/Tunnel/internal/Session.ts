import { Duplex, type Writable } from "node:stream"
import {
  DEFAULT_WINDOW,
  Flag,
  FrameDecoder,
  FrameEncoder,
  type FrameHeader,
  FrameType,
  frameTypeName,
  GoAwayCode,
  HEADER_SIZE,
  MAX_DECODE_PAYLOAD,
  MAX_STREAM_ID,
} from "./Frame.js"

/**
 * A window whose half is consumed within this many milliseconds, or four of the shortest ping round trips if
 * longer, may grow; never slower than the cap, however slow the path.
 */
const GROW_WITHIN_MIN_MS = 20
const GROW_WITHIN_MAX_MS = 250
// 64 streams grown once (to 512 KiB). With 8 MiB, 50 concurrent 1 MiB responses through one session measured
// about 10% slower, with twice the p99, than without a budget; with 16 MiB, as without.
const DEFAULT_GROWTH_BUDGET = 16 * 1024 * 1024

/**
 * Window growth shared by several sessions, all of a process's: a session takes its streams' growth from the pool
 * as well as from its own growthBudget, so together they buffer at most `size` bytes beyond their initial windows.
 * A stream's growth comes back to both when the stream is destroyed, or once it is garbage if it never was. A
 * closed session's open streams are destroyed with it; one that finished earlier and still holds unread data keeps
 * its share until its reader takes the data, destroys it, or drops it.
 */
export class GrowthPool {
  readonly size: number
  private taken = 0

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 0)
      throw new RangeError("a growth pool's size must be a non-negative integer")
    this.size = size
  }

  /** Bytes of growth the sessions hold now. */
  get used(): number {
    return this.taken
  }

  /** @internal Takes up to `wanted` bytes and returns how many it got. */
  take(wanted: number): number {
    const granted = Math.min(wanted, this.size - this.taken)
    this.taken += granted
    return granted
  }

  /** @internal */
  give(bytes: number): void {
    this.taken -= bytes
  }
}

/**
 * The smallest lent piece a stream takes by reference (see TunnelStream.receiveData). A piece taken by reference
 * and then held keeps the transport's whole read buffer (64 KiB) alive, so this bounds that to four times the
 * bytes held, which flow control bounds in turn; smaller pieces are copied, which costs little at their size.
 */
const MIN_BORROWED_PIECE = 16 * 1024

/** The growth one stream holds, kept apart from the stream so that it can be given back once the stream is gone. */
class HeldGrowth {
  bytes = 0
  private readonly returnGrowth: (bytes: number) => void

  constructor(returnGrowth: (bytes: number) => void) {
    this.returnGrowth = returnGrowth
  }

  giveBack(): void {
    const bytes = this.bytes
    this.bytes = 0
    this.returnGrowth(bytes)
  }
}

/**
 * Gives back the growth of a stream dropped without being destroyed: a finished stream whose reader let go of it
 * with data unread. Its data is garbage by then, so its share of the budget and the pool must not stay taken.
 * (A destroyed stream has given its growth back already: the callback then gives back nothing.)
 */
const droppedStreams = new FinalizationRegistry<HeldGrowth>((growth) => growth.giveBack())

/** The byte pipe a session runs over (a WebSocket in Pico, a pair of buffers in memory). */
export interface ByteChannel {
  /**
   * Queue bytes for the peer. Returns false when the peer is slow (caller should wait for onDrain). `onWritten`,
   * if the transport supports it, is called once it no longer needs `chunk`, so the buffer can be reused.
   */
  write(chunk: Buffer, onWritten?: () => void): boolean
  onDrain(listener: () => void): void
  /** Close the underlying connection (no more reads/writes). Idempotent. */
  close(): void
}

export interface SessionOptions {
  /** The client opens odd stream ids (1, 3, 5, ...), the server even ones (2, 4, 6, ...). */
  readonly role: "client" | "server"
  /** Receive window advertised per stream; at least the yamux default of 256 KiB (the default). */
  readonly initialWindow?: number
  /**
   * How far a stream's receive window may grow while its consumer keeps up (see TunnelStream.returnCredit);
   * default four times the initial window. Equal to it, windows never grow.
   */
  readonly maxWindow?: number
  /**
   * Bytes of window growth (beyond initialWindow) this session's streams may hold in all; default 16 MiB.
   * Growth lets a reader that was fast and then stalls leave its whole grown window buffered, so this bounds what
   * a session's streams can buffer beyond their initial windows. 0 turns growth off.
   */
  readonly growthBudget?: number
  /** Growth is also taken from this pool, shared with other sessions (see GrowthPool); none when absent. */
  readonly growthPool?: GrowthPool
  /** Largest Data payload we send; default 64 KiB. */
  readonly maxFramePayload?: number
  /** Streams the peer may have open at once; SYNs beyond it are answered with RST. Default 4096. */
  readonly acceptBacklog?: number
  /** Milliseconds for pings and window growth; performance.now by default (tests drive their own). */
  readonly clock?: () => number
  /**
   * Streams the peer opens before `onStream` has a handler wait for one (within acceptBacklog) instead of being
   * refused with RST. The agent's side holds them: its node may open a stream the moment the handshake is done.
   * The node's side does not, so an agent cannot park streams (and their buffers) on it.
   */
  readonly holdUnserved?: boolean
}

export type CloseReason =
  /** close() was called on this side. */
  | { readonly _tag: "Local"; readonly message: string }
  /** The underlying connection went away. */
  | { readonly _tag: "TransportClosed" }
  /** The peer sent something invalid; we sent GoAway(protocol error) and closed. */
  | { readonly _tag: "ProtocolError"; readonly message: string }

const describeCloseReason = (reason: CloseReason): string => {
  switch (reason._tag) {
    case "Local":
      return reason.message
    case "TransportClosed":
      return "transport closed"
    case "ProtocolError":
      return `protocol error: ${reason.message}`
  }
}

/** Thrown/rejected when the session cannot (or can no longer) do what was asked. */
export class SessionClosedError extends Error {
  override readonly name = "SessionClosedError"
}

export class StreamResetError extends Error {
  override readonly name = "StreamResetError"
  readonly streamId: number

  constructor(streamId: number) {
    super(`stream ${streamId} was reset by the peer`)
    this.streamId = streamId
  }
}

/** What a stream needs from its session; kept off Session's public surface. */
interface StreamHost {
  readonly maxFramePayload: number
  /** The largest a stream's receive window may grow to. */
  readonly maxWindow: number
  readonly clock: () => number
  /** A window whose half is consumed within this many milliseconds, by a consumer that keeps up, grows. */
  readonly growWithinMs: () => number
  /** Takes up to `wanted` bytes of the session's growth budget and returns how many it got. */
  readonly reserveGrowth: (wanted: number) => number
  /** Gives back growth taken with reserveGrowth. */
  readonly returnGrowth: (bytes: number) => void
  readonly isWriteBlocked: () => boolean
  readonly send: (
    type: FrameType,
    flags: number,
    streamId: number,
    length: number,
    payload?: Buffer,
    payloadStart?: number,
  ) => void
  readonly waitForDrain: (stream: TunnelStream) => void
  /** Forget the stream; with `reset` the peer is told with RST. */
  readonly release: (stream: TunnelStream, reset: boolean) => void
}

/**
 * One yamux stream as a Node Duplex. Writes become Data frames within the peer's window; received
 * Data is pushed to the readable side and credited back as the consumer reads it.
 */
export class TunnelStream extends Duplex {
  readonly id: number
  private readonly host: StreamHost
  private sendWindow = DEFAULT_WINDOW
  /** Bytes the peer may still send before we credit more. */
  private recvWindow: number
  /** The receive window granted in all: pushed - credited + recvWindow, grown from the initial one. */
  private window: number
  /**
   * How far `window` has grown beyond the initial one: taken from the session's budget, given back in _destroy, or
   * once the stream is garbage if it was never destroyed.
   */
  private readonly growth: HeldGrowth
  /** When consumed bytes were last credited back (the session clock). */
  private creditedAt = Number.NEGATIVE_INFINITY
  /** Total payload bytes pushed to the readable side / credited back to the peer. */
  private pushed = 0
  private credited = 0
  /** The chunk being written (its callback is held until it is fully framed: backpressure). */
  private pending: Buffer | undefined
  private pendingOffset = 0
  private pendingCallback: ((error?: Error | null) => void) | undefined
  private writableWaiters: Array<() => void> = []
  private finSent = false
  private finReceived = false
  private released = false
  /** Set by consumeInPlace: whether the consumer still holds bytes it was given. */
  private consumerHolds: (() => boolean) | undefined

  /** @internal Streams are created by Session.openStream or delivered to Session.onStream. */
  constructor(host: StreamHost, id: number, recvWindow: number) {
    super({ allowHalfOpen: true })
    this.host = host
    this.id = id
    this.recvWindow = recvWindow
    this.window = recvWindow
    this.growth = new HeldGrowth(host.returnGrowth)
  }

  /** @internal No more frames flow for this stream (finished both ways, reset, or session closed). */
  get isReleased(): boolean {
    return this.released
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.pending = chunk
    this.pendingOffset = 0
    this.pendingCallback = callback
    this.pump()
  }

  /** @internal Frames as much of the pending chunk as the send window and transport allow. */
  pump(): void {
    const chunk = this.pending
    if (chunk === undefined) {
      this.notifyWritable()
      return
    }
    const host = this.host
    let offset = this.pendingOffset
    while (offset < chunk.length) {
      if (this.sendWindow === 0) break // resumed by receiveWindowUpdate
      if (host.isWriteBlocked()) {
        host.waitForDrain(this)
        break
      }
      const length = Math.min(chunk.length - offset, this.sendWindow, host.maxFramePayload)
      host.send(FrameType.Data, 0, this.id, length, chunk, offset)
      this.sendWindow -= length
      offset += length
    }
    this.pendingOffset = offset
    if (offset < chunk.length) return
    const callback = this.pendingCallback
    this.pending = undefined
    this.pendingCallback = undefined
    callback?.()
    this.notifyWritable()
  }

  /** How many bytes writeNow() would take right now. */
  get writeNowCapacity(): number {
    if (this.pending !== undefined || this.writableLength > 0 || this.finSent || this.released) return 0
    return this.host.isWriteBlocked() ? 0 : this.sendWindow
  }

  /**
   * Calls `callback` once writeNowCapacity may have grown (a window update or the transport draining), so a
   * producer that paused itself can resume; if the stream is destroyed first, 'close' is what it will see.
   */
  onceWritable(callback: () => void): void {
    this.writableWaiters.push(callback)
    if (this.host.isWriteBlocked()) this.host.waitForDrain(this)
  }

  private notifyWritable(): void {
    if (this.writableWaiters.length === 0 || this.sendWindow === 0) return
    // The window has room but the transport is full. onceWritable waited for its drain only if it was full then:
    // a producer that paused for the window alone, credited while the transport is full, must wait for the drain
    // now, or nothing would wake it (the peer sends no more credit for bytes it was never sent).
    if (this.host.isWriteBlocked()) {
      if (!this.released) this.host.waitForDrain(this)
      return
    }
    const waiters = this.writableWaiters
    this.writableWaiters = []
    for (const waiter of waiters) waiter()
  }

  /**
   * Frames bytes from `source` right away, copying them, as far as the send window and the transport allow, and
   * returns how many were taken. It never holds on to `source`, so a caller reading into one reused buffer can
   * forward without allocating; what is not taken must go through write(). Takes nothing while write() data is
   * still queued, which keeps the byte order.
   */
  writeNow(source: Buffer, start: number, end: number): number {
    if (this.pending !== undefined || this.writableLength > 0 || this.finSent || this.released) return 0
    const host = this.host
    let offset = start
    while (offset < end && this.sendWindow > 0 && !host.isWriteBlocked()) {
      const length = Math.min(end - offset, this.sendWindow, host.maxFramePayload)
      host.send(FrameType.Data, 0, this.id, length, source, offset)
      this.sendWindow -= length
      offset += length
    }
    return offset - start
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.finSent = true
    this.host.send(FrameType.WindowUpdate, Flag.FIN, this.id, 0)
    if (this.finReceived) this.release(false)
    callback()
  }

  // Data is pushed as frames arrive; credit is returned from read() (see there), not here.
  override _read(): void {}

  /**
   * Every consumer path (flowing 'data', pipe, 'readable' + read(), async iteration) goes through
   * read(), so this is where consumption is observed, after the bytes left the buffer. _read() would
   * not do: Node calls it before taking the bytes and then not again until the next push, which
   * never comes once the sender is out of window (a read() of the whole buffer stalls it for good).
   */
  override read(size?: number): Buffer | null {
    const chunk: Buffer | null = super.read(size)
    this.returnCredit()
    return chunk
  }

  /**
   * Credit back consumed bytes once half a window has been consumed. Unconsumed + uncredited bytes
   * never exceed the window (the peer cannot send more), so buffering stays within the window; and
   * a stalled sender means buffered + consumed-but-uncredited = window, so by the time a reading
   * consumer has brought the buffer down to half a window, at least half a window is credited.
   *
   * The window doubles (up to maxWindow) when its half was consumed quickly by a consumer that has read
   * everything: then the window, not the consumer, limits the transfer, since the sender can have only one
   * window in flight per round trip. Measured on loopback, 200 MiB through one stream took about 1.6 times as
   * long with 256 KiB as with 1 MiB. A consumer that falls behind never makes its window grow, so a reader that
   * is slow from the start keeps the initial window; one that read fast and then stalls can leave up to
   * maxWindow buffered here.
   */
  private returnCredit(): void {
    if (this.finReceived || this.released) return
    const delta = this.pushed - this.readableLength - this.credited
    if (delta < this.window / 2) return
    const host = this.host
    const now = host.clock()
    let growth = 0
    if (
      this.readableLength === 0 &&
      this.window < host.maxWindow &&
      now - this.creditedAt < host.growWithinMs()
    ) {
      growth = host.reserveGrowth(Math.min(this.window, host.maxWindow - this.window))
      this.window += growth
      if (this.growth.bytes === 0 && growth > 0) droppedStreams.register(this, this.growth)
      this.growth.bytes += growth
    }
    this.creditedAt = now
    this.credited += delta
    this.recvWindow += delta + growth
    host.send(FrameType.WindowUpdate, 0, this.id, delta + growth)
  }

  /** Decoded strings would break the byte accounting behind flow control. */
  override setEncoding(_encoding: BufferEncoding): this {
    throw new Error("TunnelStream does not support setEncoding(); decode the Buffers instead")
  }

  // Node's HTTP client calls these on its socket; a tunnel stream has nothing to configure.
  setTimeout(_timeout: number, _callback?: () => void): this {
    return this
  }

  setNoDelay(_noDelay?: boolean): this {
    return this
  }

  setKeepAlive(_enable?: boolean, _initialDelay?: number): this {
    return this
  }

  ref(): this {
    return this
  }

  unref(): this {
    return this
  }

  /**
   * @internal A Data frame announcing `length` payload bytes starts; returns a protocol error message if the
   * peer broke the rules. The whole frame is charged to the window here, before its pieces arrive.
   */
  beginData(length: number): string | undefined {
    if (this.finReceived) return `Data on stream ${this.id} after its FIN`
    if (length > this.recvWindow) {
      return `stream ${this.id} received ${length} bytes with only ${this.recvWindow} left in its window`
    }
    this.recvWindow -= length
    return undefined
  }

  /**
   * @internal A piece of the payload announced with beginData. A `lent` piece is a view into a buffer the
   * transport reuses: it is passed on by reference only to a consumer that takes pieces in place and holds none
   * now, and only if it is large; otherwise it is copied. Returns whether it went by reference, in which case
   * holdsReceivedBytes must be asked before the transport reuses the buffer.
   */
  receiveData(piece: Buffer, lent: boolean): boolean {
    const borrowed = lent && this.takesInPlaceNow(piece.length)
    const data = lent && !borrowed ? Buffer.from(piece) : piece
    this.pushed += data.length
    this.push(data)
    // In flowing mode push() may hand the chunk straight to 'data' listeners without read(); Node
    // follows up with a read(0) later, but crediting here does not depend on that.
    this.returnCredit()
    return borrowed
  }

  /**
   * Whether a piece of `length` bytes would be taken in place: by a consumer that said it takes pieces that way,
   * while it is reading ('data' comes at once only with nothing buffered) and holds nothing of an earlier one.
   * So each stream keeps at most one borrowed piece, of at least MIN_BORROWED_PIECE bytes.
   */
  private takesInPlaceNow(length: number): boolean {
    const holds = this.consumerHolds
    return (
      holds !== undefined &&
      length >= MIN_BORROWED_PIECE &&
      this.readableFlowing === true &&
      this.readableLength === 0 &&
      !holds()
    )
  }

  /**
   * @internal Declares that the consumer takes each piece of received data as it is pushed ('data' in flowing
   * mode) and lets go of it before the push returns, unless `holds` says otherwise when asked: say, because a
   * socket it wrote the piece to has not sent all of it yet. Large pieces may then be views into a transport's
   * read buffer, reused once nobody holds them (see LentReads). Without this, or after `undefined`, lent pieces
   * are copied.
   */
  consumeInPlace(holds: (() => boolean) | undefined): void {
    this.consumerHolds = holds
  }

  /**
   * @internal Pipes to `socket`, a plain socket: its write either sends a piece at once or keeps it in its write
   * queue, so it takes pieces in place (consumeInPlace) and holds one while its queue is not empty. Only while it
   * is the destination: once the pipe ends, a later reader gets copies, not views it never said it could take.
   * The socket must be the stream's only reader: another 'data' listener would be handed the same views.
   */
  pipeInPlace(socket: Writable): void {
    this.consumeInPlace(() => socket.writableLength > 0)
    socket.once("unpipe", () => this.consumeInPlace(undefined))
    this.pipe(socket)
  }

  /** @internal After a borrowed piece: whether it may still be referenced, here or by the consumer. */
  holdsReceivedBytes(): boolean {
    return this.readableLength > 0 || this.consumerHolds?.() !== false
  }

  /** @internal */
  receiveWindowUpdate(delta: number): void {
    this.sendWindow += delta
    this.pump()
  }

  /** @internal */
  receiveFin(): void {
    if (this.finReceived) return
    this.finReceived = true
    this.push(null)
    if (this.finSent) this.release(false)
  }

  /** @internal */
  receiveReset(): void {
    this.release(false)
    this.destroy(new StreamResetError(this.id))
  }

  /** @internal The session is gone: fail the stream without sending anything. */
  abort(error: Error): void {
    this.released = true
    this.destroy(error)
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // A stream finished both ways was released then; any other is reset.
    this.release(true)
    // Only now is nothing it let in buffered here: a stream finished both ways may still hold data its reader has
    // not taken, up to its whole grown window. (Node destroys a stream once it has ended and finished.)
    this.growth.giveBack()
    const pending = this.pendingCallback
    this.pending = undefined
    this.pendingCallback = undefined
    pending?.(error ?? new Error(`stream ${this.id} was destroyed before the write completed`))
    callback(error)
  }

  private release(reset: boolean): void {
    if (this.released) return
    this.released = true
    this.host.release(this, reset)
  }
}

const ignoreUnservedError = (): void => {}

interface PendingPing {
  readonly start: number
  readonly resolve: (rttMs: number) => void
  readonly reject: (error: Error) => void
}

/**
 * A yamux session over a ByteChannel. The owner feeds received bytes to `receive` and reports the
 * end of the transport with `transportClosed`; everything else is driven from here.
 */
export class Session {
  private readonly transport: ByteChannel
  private readonly initialWindow: number
  private readonly acceptBacklog: number
  private readonly growthPool: GrowthPool | undefined
  /**
   * The shortest round trip of the pings answered so far, in milliseconds: the path's own, without the time a
   * ping waited behind data in the queues. 0 until one is answered.
   */
  private minRttMs = 0
  private readonly clock: () => number
  /** Stream id parity we open (1 = odd); the peer must open the other one. */
  private readonly localParity: number
  private readonly decoder: FrameDecoder
  private readonly encoder: FrameEncoder
  private readonly host: StreamHost
  private readonly streams = new Map<number, TunnelStream>()
  private readonly drainWaiters = new Set<TunnelStream>()
  private readonly pings = new Map<number, PendingPing>()
  private readonly goAwayHandlers = new Set<(code: number) => void>()
  private readonly closeHandlers = new Set<(reason: CloseReason) => void>()
  private streamHandler: ((stream: TunnelStream) => void) | undefined
  private readonly holdUnserved: boolean
  /** Streams accepted while no handler was set (holdUnserved), in arrival order. */
  private readonly unserved: Array<TunnelStream> = []
  /** Where the pieces of the Data frame being decoded go (undefined: dropped). */
  private dataStream: TunnelStream | undefined
  /** The chunk being decoded is lent (see receive). */
  private lent = false
  /** Streams given lent pieces since lentBytesHeld last asked, each once in a row; emptied, not replaced. */
  private readonly lentTo: Array<TunnelStream> = []
  private nextStreamId: number
  private lastRemoteId = 0
  /** Open streams the peer initiated (bounded by acceptBacklog). */
  private remoteOpen = 0
  private nextPingId = 0
  /** Window growth held by streams not yet destroyed, in bytes (see growthBudget). */
  private growthInUse = 0
  private writeBlocked = false
  private flushScheduled = false
  private goAwaySent = false
  private peerGoAway: number | undefined
  private reason: CloseReason | undefined

  constructor(transport: ByteChannel, options: SessionOptions) {
    const initialWindow = options.initialWindow ?? DEFAULT_WINDOW
    const maxWindow = options.maxWindow ?? Math.min(4 * initialWindow, MAX_STREAM_ID)
    const maxFramePayload = options.maxFramePayload ?? 64 * 1024
    const acceptBacklog = options.acceptBacklog ?? 4096
    const growthBudget = options.growthBudget ?? DEFAULT_GROWTH_BUDGET
    // yamux starts every stream at 256 KiB; a larger window is announced with the SYN/ACK, a smaller
    // one cannot be expressed.
    if (!Number.isInteger(initialWindow) || initialWindow < DEFAULT_WINDOW || initialWindow > MAX_STREAM_ID) {
      throw new RangeError(`initialWindow must be an integer from ${DEFAULT_WINDOW} to ${MAX_STREAM_ID}`)
    }
    if (!Number.isInteger(maxWindow) || maxWindow < initialWindow || maxWindow > MAX_STREAM_ID) {
      throw new RangeError(
        `maxWindow must be an integer from initialWindow (${initialWindow}) to ${MAX_STREAM_ID}`,
      )
    }
    if (!Number.isInteger(maxFramePayload) || maxFramePayload < 1 || maxFramePayload > MAX_DECODE_PAYLOAD) {
      throw new RangeError(`maxFramePayload must be an integer from 1 to ${MAX_DECODE_PAYLOAD}`)
    }
    if (!Number.isInteger(growthBudget) || growthBudget < 0) {
      throw new RangeError("growthBudget must be a non-negative integer")
    }
    if (!Number.isInteger(acceptBacklog) || acceptBacklog < 0) {
      throw new RangeError("acceptBacklog must be a non-negative integer")
    }
    this.transport = transport
    this.clock = options.clock ?? (() => performance.now())
    this.initialWindow = initialWindow
    this.acceptBacklog = acceptBacklog
    this.growthPool = options.growthPool
    this.holdUnserved = options.holdUnserved ?? false
    this.localParity = options.role === "client" ? 1 : 0
    this.nextStreamId = options.role === "client" ? 1 : 2
    this.decoder = new FrameDecoder({
      onFrame: (header) => this.onFrame(header),
      onData: (header, piece, first, last) => this.onData(header, piece, first, last),
      onError: (reason) => this.protocolError(reason),
    })
    this.encoder = new FrameEncoder((batch, release) => {
      if (!this.transport.write(batch, release)) this.writeBlocked = true
    }, HEADER_SIZE + maxFramePayload)
    this.host = {
      maxFramePayload,
      maxWindow,
      clock: this.clock,
      // A window-limited transfer consumes a window per round trip; a few round trips leave room for a busy
      // loop. Before the first ping has been answered the round trip is taken to be short.
      growWithinMs: () => Math.min(GROW_WITHIN_MAX_MS, Math.max(GROW_WITHIN_MIN_MS, 4 * this.minRttMs)),
      reserveGrowth: (wanted) => {
        const allowed = Math.min(wanted, growthBudget - this.growthInUse)
        const granted = this.growthPool === undefined ? allowed : this.growthPool.take(allowed)
        this.growthInUse += granted
        return granted
      },
      returnGrowth: (bytes) => {
        this.growthInUse -= bytes
        this.growthPool?.give(bytes)
      },
      isWriteBlocked: () => this.writeBlocked,
      send: (type, flags, streamId, length, payload, payloadStart) =>
        this.send(type, flags, streamId, length, payload, payloadStart),
      waitForDrain: (stream) => this.drainWaiters.add(stream),
      release: (stream, reset) => this.release(stream, reset),
    }
    transport.onDrain(() => this.onDrain())
  }

  get closed(): boolean {
    return this.reason !== undefined
  }

  get closeReason(): CloseReason | undefined {
    return this.reason
  }

  /** Open streams (either side's). */
  get streamCount(): number {
    return this.streams.size
  }

  /** False once the session is closed or the peer has sent GoAway, i.e. when openStream() would throw. */
  canOpenStream(): boolean {
    return this.reason === undefined && this.peerGoAway === undefined
  }

  /**
   * Feed bytes received from the transport. A `lent` chunk is a view into a buffer the transport reuses for its
   * next read: once the read is decoded, lentBytesHeld says whether it may.
   */
  receive(chunk: Buffer, lent = false): void {
    this.lent = lent
    this.decoder.push(chunk)
  }

  /**
   * Whether any bytes of the lent chunks received since the last call may still be referenced: a piece a stream
   * took by reference is still in its readable buffer, or its consumer has not let go of it (streams copy the
   * pieces they cannot take in place: see TunnelStream.receiveData). The transport then leaves that buffer to its
   * holders.
   */
  lentBytesHeld(): boolean {
    const held = this.lentTo.some((stream) => stream.holdsReceivedBytes())
    this.lentTo.length = 0
    return held
  }

  /** The transport is gone (closed or failed). */
  transportClosed(): void {
    this.closeWith({ _tag: "TransportClosed" })
  }

  /** Close because the peer misbehaved (e.g. at the transport level): GoAway(protocol error), then close. */
  protocolError(message: string): void {
    this.closeWith({ _tag: "ProtocolError", message })
  }

  /**
   * Open a stream; data may be written at once (the peer grants the default window implicitly).
   * Sending GoAway ourselves does not prevent this; having received one does.
   */
  openStream(): TunnelStream {
    if (this.reason !== undefined) {
      throw new SessionClosedError(`session is closed (${describeCloseReason(this.reason)})`)
    }
    if (this.peerGoAway !== undefined) {
      throw new SessionClosedError(
        `the peer sent GoAway (code ${this.peerGoAway}) and accepts no new streams`,
      )
    }
    const id = this.nextStreamId
    if (id > MAX_STREAM_ID) throw new SessionClosedError("stream ids are exhausted; open a new session")
    this.nextStreamId += 2
    const stream = new TunnelStream(this.host, id, this.initialWindow)
    this.streams.set(id, stream)
    this.send(FrameType.WindowUpdate, Flag.SYN, id, this.initialWindow - DEFAULT_WINDOW)
    return stream
  }

  /**
   * Handle streams the peer opens, starting with any held for a handler (holdUnserved); without a handler
   * (undefined) new ones are refused with RST, or held.
   */
  onStream(handler: ((stream: TunnelStream) => void) | undefined): void {
    this.streamHandler = handler
    if (handler === undefined) return
    for (let stream = this.unserved.shift(); stream !== undefined; stream = this.unserved.shift()) {
      stream.off("error", ignoreUnservedError)
      // Reset by the peer, or the session closed, while it waited.
      if (!stream.destroyed) handler(stream)
    }
  }

  /** Calls `handler` when the peer sends GoAway; the returned function unregisters it. */
  onGoAway(handler: (code: number) => void): () => void {
    this.goAwayHandlers.add(handler)
    return () => void this.goAwayHandlers.delete(handler)
  }

  /** Called once when the session closes (at once if it already has); the returned function unregisters it. */
  onClose(handler: (reason: CloseReason) => void): () => void {
    if (this.reason !== undefined) {
      handler(this.reason)
      return () => {}
    }
    this.closeHandlers.add(handler)
    return () => void this.closeHandlers.delete(handler)
  }

  /** Round-trip time in milliseconds; rejects with SessionClosedError if the session closes first. */
  ping(): Promise<number> {
    if (this.reason !== undefined) {
      return Promise.reject(new SessionClosedError(`session is closed (${describeCloseReason(this.reason)})`))
    }
    const id = this.nextPingId
    this.nextPingId = (id + 1) >>> 0
    return new Promise((resolve, reject) => {
      this.pings.set(id, { start: this.clock(), resolve, reject })
      this.send(FrameType.Ping, Flag.SYN, 0, id)
    })
  }

  /** Tell the peer to open no more streams here (sent once). We may still open streams ourselves. */
  goAway(code: number = GoAwayCode.Normal): void {
    if (this.goAwaySent) return
    this.goAwaySent = true
    this.send(FrameType.GoAway, 0, 0, code)
  }

  /** Close everything: streams fail with SessionClosedError, pending pings reject. Idempotent. */
  close(message = "closed"): void {
    this.closeWith({ _tag: "Local", message })
  }

  private closeWith(reason: CloseReason): void {
    if (this.reason !== undefined) return
    // Tell the peer why before hanging up; the transport's close lets queued bytes out first.
    if (reason._tag === "ProtocolError") this.send(FrameType.GoAway, 0, 0, GoAwayCode.ProtocolError)
    this.reason = reason
    this.decoder.stop()
    if (reason._tag !== "TransportClosed") {
      this.encoder.flush()
      this.transport.close()
    }
    const error = new SessionClosedError(`session closed: ${describeCloseReason(reason)}`)
    const streams = [...this.streams.values()]
    this.streams.clear()
    this.unserved.length = 0
    this.remoteOpen = 0
    this.drainWaiters.clear()
    for (const stream of streams) stream.abort(error)
    for (const ping of this.pings.values()) ping.reject(error)
    this.pings.clear()
    const handlers = [...this.closeHandlers]
    this.closeHandlers.clear()
    for (const handler of handlers) handler(reason)
  }

  private send(
    type: FrameType,
    flags: number,
    streamId: number,
    length: number,
    payload?: Buffer,
    payloadStart?: number,
  ): void {
    if (this.reason !== undefined) return
    this.encoder.frame(type, flags, streamId, length, payload, payloadStart)
    if (this.flushScheduled) return
    this.flushScheduled = true
    // setImmediate rather than a microtask: it runs after the whole I/O poll phase, so frames caused
    // by several sockets becoming readable at once still leave in one transport write.
    setImmediate(this.flush)
  }

  private readonly flush = (): void => {
    this.flushScheduled = false
    if (this.reason === undefined) this.encoder.flush()
  }

  private onDrain(): void {
    this.writeBlocked = false
    if (this.drainWaiters.size === 0) return
    // Copy first: a stream that blocks again re-adds itself, which would extend a live iteration.
    const waiters = [...this.drainWaiters]
    this.drainWaiters.clear()
    for (const stream of waiters) stream.pump()
  }

  private onFrame(header: FrameHeader): void {
    switch (header.type) {
      case FrameType.WindowUpdate:
        this.onWindowUpdate(header)
        break
      case FrameType.Ping:
        this.onPing(header)
        break
      case FrameType.GoAway:
        this.onGoAwayFrame(header.length)
        break
    }
  }

  private onWindowUpdate(header: FrameHeader): void {
    const stream = this.streamFor(header)
    if (stream === undefined) return
    if (header.length > 0) stream.receiveWindowUpdate(header.length)
    // Handlers run above may have destroyed the stream or closed the session.
    if ((header.flags & Flag.FIN) !== 0 && !stream.isReleased) stream.receiveFin()
    if ((header.flags & Flag.RST) !== 0 && !stream.isReleased) stream.receiveReset()
  }

  /** A Data frame arrives in pieces: SYN/RST and the window are dealt with on the first, FIN after the last. */
  private onData(header: FrameHeader, piece: Buffer, first: boolean, last: boolean): void {
    if (first) this.dataStream = this.beginData(header)
    const stream = this.dataStream
    if (stream === undefined) return
    // Handlers run on earlier pieces may have destroyed the stream; the rest of the frame is then dropped.
    if (piece.length > 0 && !stream.isReleased) {
      if (stream.receiveData(piece, this.lent) && this.lentTo.at(-1) !== stream) this.lentTo.push(stream)
    }
    if (!last) return
    this.dataStream = undefined
    if ((header.flags & Flag.FIN) !== 0 && !stream.isReleased) stream.receiveFin()
  }

  /** The stream a Data frame's pieces go to; undefined to drop them. */
  private beginData(header: FrameHeader): TunnelStream | undefined {
    const stream = this.streamFor(header)
    if (stream === undefined) return undefined
    // The payload of an aborted stream has nowhere to go.
    if ((header.flags & Flag.RST) !== 0) {
      stream.receiveReset()
      return undefined
    }
    if (header.length === 0) return stream
    const invalid = stream.beginData(header.length)
    return invalid === undefined ? stream : this.fail(invalid)
  }

  /** The open stream a Data/WindowUpdate frame is for (accepting a SYN); undefined to drop the frame. */
  private streamFor(header: FrameHeader): TunnelStream | undefined {
    const { streamId } = header
    if (streamId === 0) return this.fail(`${frameTypeName(header.type)} frame on stream 0`)
    const stream = this.streams.get(streamId)
    if ((header.flags & Flag.SYN) !== 0) {
      const invalid =
        stream !== undefined
          ? `SYN for stream ${streamId}, which is already open`
          : this.checkNewRemoteId(streamId)
      if (invalid !== undefined) return this.fail(invalid)
      this.lastRemoteId = streamId
      return this.accept(streamId)
    }
    if (stream !== undefined) return stream
    // A frame that raced our RST (or arrived after both FINs) is harmless; one for an id that was
    // never opened means the peer is confused.
    if (this.wasOpened(streamId)) return undefined
    return this.fail(`${frameTypeName(header.type)} frame for stream ${streamId}, which was never opened`)
  }

  private fail(message: string): undefined {
    this.protocolError(message)
    return undefined
  }

  private checkNewRemoteId(id: number): string | undefined {
    if ((id & 1) === this.localParity) {
      const peer = this.localParity === 1 ? "server" : "client"
      return `SYN for stream ${id}: the ${peer} must open ${this.localParity === 1 ? "even" : "odd"} stream ids`
    }
    if (id <= this.lastRemoteId) {
      return `SYN for stream ${id}: stream ids must increase (last was ${this.lastRemoteId})`
    }
    return undefined
  }

  private wasOpened(id: number): boolean {
    return (id & 1) === this.localParity ? id < this.nextStreamId : id <= this.lastRemoteId
  }

  private accept(id: number): TunnelStream | undefined {
    const handler = this.streamHandler
    if ((handler === undefined && !this.holdUnserved) || this.remoteOpen >= this.acceptBacklog) {
      this.send(FrameType.WindowUpdate, Flag.RST, id, 0)
      return undefined
    }
    const stream = new TunnelStream(this.host, id, this.initialWindow)
    this.streams.set(id, stream)
    this.remoteOpen++
    this.send(FrameType.WindowUpdate, Flag.ACK, id, this.initialWindow - DEFAULT_WINDOW)
    if (handler === undefined) {
      // Until a handler takes it, nobody else would hear a reset or the session closing.
      stream.on("error", ignoreUnservedError)
      this.unserved.push(stream)
      return stream
    }
    handler(stream)
    return stream.isReleased ? undefined : stream
  }

  private release(stream: TunnelStream, reset: boolean): void {
    if (this.streams.get(stream.id) !== stream) return
    this.streams.delete(stream.id)
    if ((stream.id & 1) !== this.localParity) this.remoteOpen--
    this.drainWaiters.delete(stream)
    if (reset) this.send(FrameType.WindowUpdate, Flag.RST, stream.id, 0)
  }

  private onPing(header: FrameHeader): void {
    if ((header.flags & Flag.SYN) !== 0) {
      this.send(FrameType.Ping, Flag.ACK, 0, header.length)
      return
    }
    if ((header.flags & Flag.ACK) === 0) return
    const ping = this.pings.get(header.length)
    if (ping === undefined) return
    this.pings.delete(header.length)
    const rtt = this.clock() - ping.start
    if (this.minRttMs === 0 || rtt < this.minRttMs) this.minRttMs = rtt
    ping.resolve(rtt)
  }

  private onGoAwayFrame(code: number): void {
    this.peerGoAway = code
    for (const handler of this.goAwayHandlers) handler(code)
  }
}
