import type { ByteChannel, Session } from "./Session.js"

/**
 * One direction of an in-memory link to a peer session: bytes are delivered asynchronously (setImmediate) and in
 * order, with backpressure, as over a socket. `paused` holds delivery back, as a network that stopped carrying
 * packets: a peer then hears nothing until `resume`.
 */
export class MemoryChannel implements ByteChannel {
  peer: Session | undefined
  writes = 0
  paused = false
  private readonly queue: Array<Buffer> = []
  private queued = 0
  private blocked = false
  private scheduled = false
  private closed = false
  private readonly drainListeners: Array<() => void> = []

  constructor(private readonly highWater = 4 * 1024 * 1024) {}

  write(chunk: Buffer): boolean {
    if (this.closed) return true
    this.writes++
    this.queue.push(chunk)
    this.queued += chunk.length
    this.schedule()
    if (this.queued < this.highWater) return true
    this.blocked = true
    return false
  }

  onDrain(listener: () => void): void {
    this.drainListeners.push(listener)
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    // The peer learns about the close after the bytes already queued.
    this.schedule()
  }

  resume(): void {
    this.paused = false
    this.schedule()
  }

  private schedule(): void {
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      if (this.paused) return
      for (let chunk = this.queue.shift(); chunk !== undefined; chunk = this.queue.shift()) {
        this.queued -= chunk.length
        this.peer?.receive(chunk)
      }
      if (this.closed) this.peer?.transportClosed()
      if (this.blocked) {
        this.blocked = false
        for (const listener of this.drainListeners) listener()
      }
    })
  }
}
