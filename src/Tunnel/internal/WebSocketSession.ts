import { isUtf8 } from "node:buffer"
import { Socket } from "node:net"
import type { Duplex } from "node:stream"
import type { LentReads } from "./LentReads.js"
import { type ByteChannel, Session, type SessionOptions } from "./Session.js"
import { Opcode, WebSocketReader } from "./WebSocketReader.js"

/** How long a closing connection may take to finish the close handshake before it is cut. */
const CLOSE_GRACE_MS = 2_000

/**
 * Bytes waiting in the socket past which the peer is taken not to read. Data waits for the socket to drain
 * (Session's write block), so only answers the peer asked for (pongs, ping acknowledgements, window updates) can
 * pile up beyond a batch or two: a peer that keeps asking and never reads would grow them without end.
 */
const MAX_UNSENT_BYTES = 4 * 1024 * 1024

const CloseCode = { Normal: 1000, ProtocolError: 1002 } as const

/** Codes a peer may send in a close frame (RFC 6455 §7.4); the rest are reserved or for local use only. */
const isValidCloseCode = (code: number): boolean =>
  (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)

/** What is wrong with a close frame's payload (RFC 6455 §5.5.1), if anything. */
const invalidClose = (payload: Buffer): string | undefined => {
  if (payload.length === 0) return undefined
  if (payload.length === 1) return "websocket close frame with a 1-byte payload"
  const code = payload.readUInt16BE(0)
  if (!isValidCloseCode(code)) return `websocket close code ${code} is not allowed`
  if (!isUtf8(payload.subarray(2))) return "websocket close reason is not valid UTF-8"
  return undefined
}

/**
 * Header of a final frame. A server's frames are unmasked; a client's must be masked (RFC 6455 §5.3), and Pico's
 * client uses the all-zero key, which the standard allows and which leaves the payload as it is: nothing to copy.
 */
const frameHeader = (opcode: number, length: number, masked: boolean): Buffer => {
  const lengthBytes = length < 126 ? 0 : length < 0x1_0000 ? 2 : 8
  // allocUnsafe comes from Node's pool; the zero key needs zeroed bytes, written below.
  const header = Buffer.allocUnsafe(2 + lengthBytes + (masked ? 4 : 0))
  header[0] = 0x80 | opcode
  const maskBit = masked ? 0x80 : 0
  if (lengthBytes === 0) header[1] = maskBit | length
  else if (lengthBytes === 2) {
    header[1] = maskBit | 126
    header.writeUInt16BE(length, 2)
  } else {
    header[1] = maskBit | 127
    header.writeUInt32BE(Math.floor(length / 0x1_0000_0000), 2)
    header.writeUInt32BE(length >>> 0, 6)
  }
  if (masked) header.writeUInt32BE(0, 2 + lengthBytes)
  return header
}

const controlFrame = (opcode: number, payload: Buffer, masked: boolean): Buffer =>
  Buffer.concat([frameHeader(opcode, payload.length, masked), payload])

const closeFrame = (code: number, masked: boolean): Buffer => {
  const payload = Buffer.allocUnsafe(2)
  payload.writeUInt16BE(code, 0)
  return controlFrame(Opcode.Close, payload, masked)
}

/** The sending half: each transport write becomes one binary frame on the socket. */
class WebSocketTransport implements ByteChannel {
  private readonly socket: Duplex
  /** True on the client's side, whose frames carry a (zero) masking key. */
  private readonly masked: boolean
  /** Set once our close frame (or FIN) is on its way: nothing may be written after it. */
  private closing = false
  private timer: NodeJS.Timeout | undefined
  /** What close() sends: normal, or protocol error once the peer broke the WebSocket rules. */
  closeCode: number = CloseCode.Normal

  /** Told once the peer has let more than MAX_UNSENT_BYTES pile up. */
  private readonly onUnreadPeer: (unsent: number) => void

  constructor(socket: Duplex, masked: boolean, onUnreadPeer: (unsent: number) => void) {
    this.socket = socket
    this.masked = masked
    this.onUnreadPeer = onUnreadPeer
  }

  private checkUnsent(): void {
    const unsent = this.socket.writableLength
    if (unsent > MAX_UNSENT_BYTES && !this.closing) this.onUnreadPeer(unsent)
  }

  write(chunk: Buffer, onWritten?: () => void): boolean {
    const socket = this.socket
    if (this.closing || !socket.writable) return true // the close event is on its way
    // The header goes out as its own small buffer rather than copying the batch behind it; corked, both
    // leave in one writev. The batch is released once the socket is done with it.
    socket.cork()
    socket.write(frameHeader(Opcode.Binary, chunk.length, this.masked))
    const belowHighWater = socket.write(chunk, onWritten)
    socket.uncork()
    if (!belowHighWater) this.checkUnsent()
    return belowHighWater
  }

  onDrain(listener: () => void): void {
    this.socket.on("drain", listener)
  }

  /**
   * A close frame and FIN rather than destroy(): frames queued just before it (notably the GoAway explaining a
   * protocol error) reach the peer, where an abrupt close with unread input would make the kernel send RST
   * and discard them.
   */
  close(): void {
    this.shutdown(closeFrame(this.closeCode, this.masked))
  }

  sendControl(opcode: number, payload: Buffer): void {
    if (this.closing || !this.socket.writable) return
    if (!this.socket.write(controlFrame(opcode, payload, this.masked))) this.checkUnsent()
  }

  /** Ends the socket after `last`; a peer that does not finish closing within the grace period is cut off. */
  shutdown(last: Buffer | undefined): void {
    if (this.closing) return
    this.closing = true
    const socket = this.socket
    if (socket.destroyed) return
    if (last === undefined) socket.end()
    else socket.end(last)
    this.timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS)
    this.timer.unref()
  }

  socketClosed(): void {
    this.closing = true
    clearTimeout(this.timer)
  }
}

/**
 * Runs one side of a yamux session over a WebSocket connection whose handshake is done: the node's side once it
 * has answered an upgrade (WebSocketHandshake), the agent's once its handshake succeeded (WebSocketClient).
 * Received binary payload reaches the session as views into the socket's own read buffers, unmasked in place, with
 * no copy, no reassembly of large messages and no per-message work. `head` is what Node read past the handshake.
 * With `lentReads` (the agent's plain TCP connection), those read buffers are reused: see LentReads.
 */
export const runWebSocketSession = (
  socket: Duplex,
  head: Buffer,
  options: SessionOptions,
  lentReads?: LentReads,
): Session => {
  const client = options.role === "client"
  const transport = new WebSocketTransport(socket, client, (unsent) =>
    protocolError(`the peer does not read: ${unsent} bytes wait to be sent to it`),
  )
  const session = new Session(transport, options)
  /** True while the reader decodes a lent read: its pieces are views into a buffer the socket would reuse. */
  let lending = false
  const reader = new WebSocketReader(
    {
      onBinary: (piece) => session.receive(piece, lending),
      onControl: (opcode, payload) => {
        if (opcode === Opcode.Ping) transport.sendControl(Opcode.Pong, payload)
        else if (opcode === Opcode.Close) onCloseFrame(payload)
      },
      onError: protocolError,
    },
    client ? "server" : "client",
  )

  function protocolError(reason: string): void {
    reader.stop()
    transport.closeCode = CloseCode.ProtocolError
    session.protocolError(reason)
  }

  // The peer is done: answer with its code (RFC 6455 §5.5.1) and hang up.
  function onCloseFrame(payload: Buffer): void {
    const invalid = invalidClose(payload)
    if (invalid !== undefined) {
      protocolError(invalid)
      return
    }
    reader.stop()
    transport.shutdown(controlFrame(Opcode.Close, payload.subarray(0, 2), client))
    session.transportClosed()
  }

  if (socket instanceof Socket) {
    // An idle timeout from the HTTP phase must not cut a quiet tunnel: yamux pings check liveness.
    socket.setTimeout(0)
    // Frames are already batched per tick; Nagle could only hold back the last one.
    socket.setNoDelay(true)
  }
  if (head.length > 0) reader.push(head)
  // What one I/O poll phase reads (libuv makes up to 32 reads of 64 KiB per readiness) is decoded together
  // from setImmediate rather than read by read: streams then get their pieces, and return their credit, in one
  // go per loop iteration, so the writes they cause coalesce (client writes, window updates). Measured with
  // 1 MiB responses: about 10% less server CPU than decoding in the 'data' callback.
  let received: Array<Buffer> = []
  const decodeReceived = (): void => {
    const chunks = received
    received = []
    for (const chunk of chunks) reader.push(chunk)
  }
  if (lentReads === undefined) {
    socket.on("data", (chunk: Buffer) => {
      if (received.length === 0) setImmediate(decodeReceived)
      received.push(chunk)
    })
  } else {
    // A lent read is decoded at once: its buffer is the next read's unless some of its bytes are still held.
    lentReads.take((view) => {
      lending = true
      reader.push(view)
      lending = false
      return session.lentBytesHeld()
    })
  }
  // A FIN without a close frame: the peer sends nothing more; finish our side too.
  socket.on("end", () => {
    decodeReceived()
    session.transportClosed()
    transport.shutdown(undefined)
  })
  socket.on("error", () => session.transportClosed())
  socket.on("close", () => {
    transport.socketClosed()
    session.transportClosed()
  })
  if (socket.destroyed) session.transportClosed()
  return session
}
