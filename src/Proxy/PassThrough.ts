import type { Duplex } from "node:stream"
import { Effect } from "effect"
import { resetConnection } from "../internal/Reset.js"
import type { TcpCounters } from "./TcpTraffic.js"
import { FrameBoundaries, goingAwayToClient, goingAwayToServer } from "./WebSocketFrames.js"

/** How long a pass-through being closed may take to finish the frame under way and say goodbye. */
const CLOSE_GRACE_MS = 1_000

/** What a pass-through carries, which decides how it is ended. */
export type Carried =
  /** A WebSocket: ended with a close frame with 1001 (Going Away) in each direction, at a frame boundary. */
  | { readonly _tag: "WebSocket" }
  /**
   * A TCP connection to a TCP endpoint: half-closes pass through, and it is ended with FIN. Its connections and
   * bytes count in `counters` when it runs through this node's own tunnel (not when it goes on to a peer node).
   */
  | { readonly _tag: "Tcp"; readonly counters: TcpCounters | undefined }

export const webSocket: Carried = { _tag: "WebSocket" }

/**
 * Connections that became byte pipes after the upstream answered `101 Switching Protocols`: WebSockets and TCP
 * connections. A draining node keeps them open through its grace period, then ends them cleanly.
 */
export interface PassThroughs {
  /** Pipes `client` and `upstream` together, both ways with backpressure, until either side ends. */
  readonly open: (client: Duplex, upstream: Duplex, carried: Carried) => void
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
  counted: ((bytes: number) => void) | undefined,
): { readonly close: () => void } => {
  let closing = false
  let finished = false
  let waitingForDrain = false
  const resume = () => {
    waitingForDrain = false
    from.resume()
  }
  const write = (chunk: Buffer) => {
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
      counted?.(chunk.length)
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
  }
}

export const make = (): PassThroughs => {
  const open = new Set<() => void>()
  // Open while no pass-through is.
  const none = Effect.unsafeMakeLatch(true)
  /** False when it was removed already (both sides report their end). */
  const removed = (close: () => void): boolean => {
    if (!open.delete(close)) return false
    if (open.size === 0) none.unsafeOpen()
    return true
  }

  return {
    open: (client, upstream, carried) => {
      const websocket = carried._tag === "WebSocket"
      const counters = carried._tag === "Tcp" ? carried.counters : undefined
      if (!websocket) {
        // TCP's half-close: one side's FIN ends only its direction (Node would end the other with it).
        client.allowHalfOpen = true
        upstream.allowHalfOpen = true
      }
      const toClient = direction(
        upstream,
        client,
        websocket ? new FrameBoundaries() : undefined,
        websocket ? goingAwayToClient : undefined,
        counters === undefined
          ? undefined
          : (bytes) => {
              counters.bytesToClients += bytes
            },
      )
      const toUpstream = direction(
        client,
        upstream,
        websocket ? new FrameBoundaries() : undefined,
        websocket ? goingAwayToServer : undefined,
        counters === undefined
          ? undefined
          : (bytes) => {
              counters.bytesFromClients += bytes
            },
      )
      if (counters !== undefined) {
        counters.open++
        counters.opened++
      }
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
      // Either side closing ends both; errors must be handled here or they would be thrown. A side that failed
      // (a reset, a broken connection) is passed on as a reset, so the other end does not take it for a clean end.
      const end = () => {
        client.destroy()
        upstream.destroy()
        if (removed(close) && counters !== undefined) counters.open--
      }
      client.on("error", () => resetConnection(upstream))
      upstream.on("error", () => resetConnection(client))
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
