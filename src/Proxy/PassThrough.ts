import type { Duplex } from "node:stream"
import { Effect } from "effect"
import { FrameBoundaries, goingAwayToClient, goingAwayToServer } from "./WebSocketFrames.js"

/** How long a pass-through being closed may take to finish the frame under way and say goodbye. */
const CLOSE_GRACE_MS = 1_000

/**
 * Connections that became byte pipes after the upstream answered `101 Switching Protocols`: WebSockets, and any
 * other protocol Pico passes through. A draining node keeps them open through its grace period, then ends them
 * cleanly: a WebSocket gets a close frame with 1001 (Going Away) in each direction, at a frame boundary.
 */
export interface PassThroughs {
  /**
   * Pipes `client` and `upstream` together, both ways with backpressure, until either side ends; then tells
   * `closed` how many bytes went each way.
   */
  readonly open: (
    client: Duplex,
    upstream: Duplex,
    websocket: boolean,
    closed?: (fromClient: number, toClient: number) => void,
  ) => void
  readonly count: () => number
  /** Completes once no pass-through is open. */
  readonly awaitNone: Effect.Effect<void>
  /** Ends every open pass-through, and completes once they are gone. */
  readonly closeAll: Effect.Effect<void>
}

/** One direction of a pipe, which can be asked to stop at the next frame boundary. */
const direction = (
  from: Duplex,
  to: Duplex,
  frames: FrameBoundaries | undefined,
  goodbye: Buffer | undefined,
): { readonly close: () => void; readonly bytes: () => number } => {
  let bytes = 0
  let closing = false
  let finished = false
  let waitingForDrain = false
  const resume = () => {
    waitingForDrain = false
    from.resume()
  }
  const write = (chunk: Buffer) => {
    bytes += chunk.length
    if (!to.write(chunk) && !waitingForDrain) {
      waitingForDrain = true
      from.pause()
      to.once("drain", resume)
    }
  }
  const finish = () => {
    if (finished) return
    finished = true
    from.off("data", onData)
    if (goodbye !== undefined && to.writable) to.write(goodbye)
    to.end()
  }
  const onData = (chunk: Buffer) => {
    if (!closing) {
      frames?.feed(chunk)
      return write(chunk)
    }
    // Closing: pass on only what completes the frame under way, then say goodbye.
    let offset = 0
    while (frames !== undefined && !frames.atBoundary && offset < chunk.length)
      offset = frames.step(chunk, offset)
    if (offset > 0) write(chunk.subarray(0, offset))
    if (frames === undefined || frames.atBoundary) finish()
  }
  from.on("data", onData)
  // A half-close passes through: the other side may still answer.
  from.on("end", () => {
    if (!finished) to.end()
  })
  return {
    close: () => {
      closing = true
      if (frames === undefined || frames.atBoundary) finish()
    },
    bytes: () => bytes,
  }
}

export const make = (): PassThroughs => {
  const open = new Set<() => void>()
  // Open while no pass-through is.
  const none = Effect.unsafeMakeLatch(true)
  const removed = (close: () => void) => {
    if (open.delete(close) && open.size === 0) none.unsafeOpen()
  }

  return {
    open: (client, upstream, websocket, closed) => {
      const toClient = direction(
        upstream,
        client,
        websocket ? new FrameBoundaries() : undefined,
        websocket ? goingAwayToClient : undefined,
      )
      const toUpstream = direction(
        client,
        upstream,
        websocket ? new FrameBoundaries() : undefined,
        websocket ? goingAwayToServer : undefined,
      )
      const close = () => {
        toClient.close()
        toUpstream.close()
        // A peer that never finishes its frame, or never closes after our goodbye, is cut.
        setTimeout(() => {
          client.destroy()
          upstream.destroy()
        }, CLOSE_GRACE_MS).unref()
      }
      open.add(close)
      none.unsafeClose()
      // Either side failing or closing ends both; errors must be handled here or they would be thrown.
      let ended = false
      const end = () => {
        client.destroy()
        upstream.destroy()
        removed(close)
        if (ended) return
        ended = true
        closed?.(toUpstream.bytes(), toClient.bytes())
      }
      client.on("error", end)
      upstream.on("error", end)
      client.on("close", end)
      upstream.on("close", end)
    },
    count: () => open.size,
    awaitNone: none.await,
    closeAll: Effect.suspend(() => {
      for (const close of open) close()
      return none.await
    }),
  }
}
