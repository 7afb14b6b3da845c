import type { Socket } from "node:net"
import WebSocket from "ws"
import { type ByteChannel, Session, type SessionOptions } from "../../src/Tunnel/internal/Session.js"

/** Above this many queued bytes the session stops framing data until the socket catches up. */
const HIGH_WATER = 1024 * 1024
/** Drain is signalled once the queue is back under this, so writers resume in large steps. */
const LOW_WATER = 256 * 1024
/** How long a closing WebSocket may take to finish the close handshake before it is cut. */
const CLOSE_GRACE_MS = 2_000

const SEND_OPTIONS = { binary: true } as const

class WebSocketTransport implements ByteChannel {
  private readonly ws: WebSocket
  private readonly drainListeners: Array<() => void> = []
  private waitingForDrain = false

  private corked = false
  private readonly socket: Socket

  constructor(ws: WebSocket) {
    this.ws = ws
    // ws exposes no public handle on its socket; `_socket` has been stable across ws 3-8.
    this.socket = (ws as unknown as { readonly _socket: Socket })._socket
  }

  private readonly uncork = (): void => {
    this.corked = false
    this.socket.uncork()
  }

  write(chunk: Buffer, onWritten?: () => void): boolean {
    const ws = this.ws
    if (ws.readyState !== WebSocket.OPEN) return true // the close event is on its way
    // Everything written in one tick leaves in one writev instead of a syscall per message.
    if (!this.corked) {
      this.corked = true
      this.socket.cork()
      process.nextTick(this.uncork)
    }
    ws.send(
      chunk,
      SEND_OPTIONS,
      onWritten === undefined
        ? this.onSent
        : () => {
            onWritten()
            this.onSent()
          },
    )
    if (ws.bufferedAmount < HIGH_WATER) return true
    this.waitingForDrain = true
    return false
  }

  onDrain(listener: () => void): void {
    this.drainListeners.push(listener)
  }

  /**
   * A graceful close rather than terminate(): it lets frames queued just before it (notably the
   * GoAway explaining a protocol error) reach the peer, where an abrupt close with unread input
   * would make the kernel send RST and discard them. A peer that never answers is cut off.
   */
  close(): void {
    const ws = this.ws
    if (ws.readyState !== WebSocket.OPEN) {
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate()
      return
    }
    ws.close()
    const timer = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS)
    timer.unref()
    ws.once("close", () => clearTimeout(timer))
  }

  // Send callbacks fire in order as the socket flushes, and one is always outstanding while bytes
  // are queued, so checking here is guaranteed to notice the queue draining.
  private readonly onSent = (): void => {
    if (!this.waitingForDrain || this.ws.bufferedAmount > LOW_WATER) return
    this.waitingForDrain = false
    for (const listener of this.drainListeners) listener()
  }
}

const toBuffer = (data: WebSocket.RawData): Buffer =>
  Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)

/**
 * Runs a yamux session over an open `ws` client: binary messages carry the byte stream. Pico's agent has its own
 * WebSocket client (WebSocketClient, WebSocketSession); this one, with random masks, checks that Pico's server
 * endpoint serves any conforming client, and that nothing depends on a message arriving in one piece.
 */
export const attachWsClient = (ws: WebSocket, options: SessionOptions): Session => {
  ws.binaryType = "nodebuffer"
  const session = new Session(new WebSocketTransport(ws), options)
  ws.on("message", (data, isBinary) => {
    if (isBinary) session.receive(toBuffer(data))
    else session.protocolError("text websocket message")
  })
  const closed = (): void => session.transportClosed()
  ws.on("close", closed)
  ws.on("error", closed)
  if (ws.readyState === WebSocket.CLOSED) session.transportClosed()
  return session
}
