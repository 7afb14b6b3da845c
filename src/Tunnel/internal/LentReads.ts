import * as net from "node:net"

/** What libuv asks for per socket read, and what Node would allocate for each. */
const READ_SIZE = 64 * 1024

/**
 * A plain TCP connection whose reads all go into one buffer, reused for as long as nobody keeps a read's bytes,
 * where Node would allocate a fresh 64 KiB buffer per read. At hundreds of MB/s the fresh buffers cost more CPU
 * than the bytes themselves (allocation, then full collections for "external memory pressure"): while it read its
 * tunnel the usual way, an agent took 1.1-1.4 times as much CPU per upload as per download.
 *
 * Until `take`, reads are copied and pushed to the socket's readable side, as Node would push them, for Node's
 * HTTP client to read the WebSocket handshake's answer. From `take` on, each read goes to the taker as a view
 * into the buffer, and the taker says whether anything still holds part of it. If so, the buffer is left to its
 * holders and the next read goes into a new one.
 */
export class LentReads {
  readonly socket: net.Socket
  private buffer = Buffer.allocUnsafeSlow(READ_SIZE)
  private reader: ((view: Buffer) => boolean) | undefined
  private reads = 0
  private buffers = 1

  constructor(host: string, port: number) {
    this.socket = net.connect({
      host,
      port,
      onread: {
        // Node asks for the buffer of each next read once the callback has returned.
        buffer: () => this.buffer,
        callback: (length, buffer) => {
          this.onRead(Buffer.from(buffer.buffer, buffer.byteOffset, length))
          return true
        },
      },
    })
  }

  /** Reads so far, and buffers they went into: the gap is the allocations saved. */
  get stats(): { readonly reads: number; readonly buffers: number } {
    return { reads: this.reads, buffers: this.buffers }
  }

  /**
   * Reads go to `reader` from now on. It returns true when something still holds bytes of the view it was given,
   * past its return: the next read then goes into a new buffer. The end of the input still comes as 'end'.
   */
  take(reader: (view: Buffer) => boolean): void {
    // What the HTTP client left unread: nothing when taken from within its 'upgrade' event, as Tunnel does.
    for (let early: Buffer | null = this.socket.read(); early !== null; early = this.socket.read()) {
      reader(early)
    }
    this.reader = reader
  }

  private onRead(view: Buffer): void {
    this.reads++
    if (this.reader === undefined) {
      this.socket.push(Buffer.from(view))
      return
    }
    let held: boolean
    try {
      held = this.reader(view)
    } catch (error) {
      // It may have handed out views before it threw: the buffer is theirs then too. An error thrown from this
      // callback (or from a nextTick, which still runs inside it) would keep Node from taking the next read's
      // buffer, and that read would overwrite this one: it is thrown again, uncaught as before, from setImmediate.
      held = true
      setImmediate(() => {
        throw error
      })
    }
    if (!held) return
    this.buffer = Buffer.allocUnsafeSlow(READ_SIZE)
    this.buffers++
  }
}
