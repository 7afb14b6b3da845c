/**
 * Gossip's TCP exchanges: one length-prefixed request, one length-prefixed answer, then the stream closes. Reading
 * a frame, and the limits on what a peer that has not authenticated yet can make a node hold (docs/security.md,
 * "What the gossip port holds for strangers").
 */
import type * as net from "node:net"
import { Duration, Effect, type Scope } from "effect"
import { peerAddress } from "../Domain/Address.js"
import * as ThrottledLog from "../internal/ThrottledLog.js"
import * as Metrics from "../Metrics.js"

/** Request streams are length-prefixed; a peer announcing more than this is broken or hostile. */
const MAX_STREAM_PAYLOAD = 16 * 1024 * 1024
const LENGTH_PREFIX = 4

/**
 * What the gossip port takes from peers it has not authenticated yet: a request is checked only once it is
 * whole, so the bytes of requests still arriving are capped together, as are the connections and how long each
 * may stay. A peer needs a few at a time (a join, a leave, a large delta).
 */
export interface InboundLimits {
  /** Open connections from peers; one more is cut at once. */
  readonly maxStreams: number
  /** Bytes that requests still arriving may hold between them; the connection whose bytes overrun it is cut. */
  readonly budgetBytes: number
  /**
   * How long an exchange may take, from connecting to closing, either way: the node cuts a peer's connection after
   * it, and gives up on one of its own requests.
   */
  readonly timeout: Duration.DurationInput
}

export const defaultInboundLimits: InboundLimits = {
  maxStreams: 64,
  // Room for four requests of the largest size at once: legitimate bursts overlap, more so across a WAN.
  budgetBytes: 4 * (LENGTH_PREFIX + MAX_STREAM_PAYLOAD),
  timeout: Duration.seconds(10),
}

/** Why an incoming connection was cut; the `reason` label of pico_gossip_refused_streams_total. */
type Refusal = "too_many_streams" | "over_budget" | "too_large" | "too_slow"
const refusals: ReadonlyArray<Refusal> = ["too_many_streams", "over_budget", "too_large", "too_slow"]

/** What a frame's reader has left of the bytes it may hold; shared by every incoming connection. */
export interface Budget {
  left: number
}
export const unlimited: Budget = { left: Number.POSITIVE_INFINITY }

export const frame = (payload: Uint8Array): Array<Buffer> => {
  const length = Buffer.allocUnsafe(LENGTH_PREFIX)
  length.writeUInt32BE(payload.length, 0)
  return [length, Buffer.from(payload.buffer, payload.byteOffset, payload.length)]
}

/**
 * Reads exactly one length-prefixed frame from a socket, then stops listening: the payload, or why there is
 * none ("ended": the socket closed first). What it holds is taken from `budget` and given back when it is done,
 * however it ends.
 */
export const readFrame = (
  socket: net.Socket,
  budget: Budget,
  onFrame: (payload: Buffer | "ended" | "too_large" | "over_budget") => void,
): void => {
  const chunks: Array<Buffer> = []
  let received = 0
  const finish = (payload: Buffer | "ended" | "too_large" | "over_budget") => {
    budget.left += received
    socket.off("data", onData)
    socket.off("close", onClose)
    onFrame(payload)
  }
  // The announced length, once its 4 bytes are in; the payload is joined once, when all of it has arrived.
  let length: number | undefined
  const onData = (chunk: Buffer) => {
    if (chunk.length > budget.left) return finish("over_budget")
    budget.left -= chunk.length
    chunks.push(chunk)
    received += chunk.length
    if (received < LENGTH_PREFIX) return
    if (length === undefined) {
      length = Buffer.concat(chunks).readUInt32BE(0)
      if (length > MAX_STREAM_PAYLOAD) return finish("too_large")
    }
    if (received < LENGTH_PREFIX + length) return
    const buffered = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, received)
    finish(buffered.subarray(LENGTH_PREFIX, LENGTH_PREFIX + length))
  }
  // Not "end": a reset ends nothing, and what the frame held must go back to the budget all the same.
  const onClose = () => finish("ended")
  socket.on("data", onData)
  socket.on("close", onClose)
}

/**
 * Takes incoming connections within `limits`, handing each request that arrives whole to `onRequest` with the
 * socket to answer on. Cuts are counted in pico_gossip_refused_streams_total and logged, throttled. Connections
 * still open when the scope closes are destroyed.
 */
export const acceptRequests = (
  limits: InboundLimits,
  onRequest: (payload: Buffer, peer: string, socket: net.Socket) => void,
): Effect.Effect<(socket: net.Socket) => void, never, Scope.Scope> =>
  Effect.gen(function* () {
    const labels = yield* Metrics.currentLabels
    const refusalLabels = Object.fromEntries(
      refusals.map((reason) => [reason, Metrics.withLabels(labels, { reason })]),
    ) as Record<Refusal, ReturnType<typeof Metrics.withLabels>>
    const logRefusals = yield* ThrottledLog.make(refusals, (counts) =>
      Effect.logWarning("cut gossip connections").pipe(
        Effect.annotateLogs({ subsystem: "gossip", ...counts }),
      ),
    )
    const refuse = (socket: net.Socket, reason: Refusal) => {
      if (socket.destroyed) return
      socket.destroy()
      Metrics.gossipRefusedStreams.unsafeUpdate(1, refusalLabels[reason])
      logRefusals(reason)
    }
    const budget: Budget = { left: limits.budgetBytes }
    const open = new Set<net.Socket>()
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const socket of open) socket.destroy()
      }),
    )
    return (socket: net.Socket) => {
      if (open.size >= limits.maxStreams) return refuse(socket, "too_many_streams")
      open.add(socket)
      // The whole exchange, not just the request: a peer could otherwise hold its connection by dripping bytes
      // after its request, or by reading the answer a byte at a time. The node's own requests give up as soon.
      const deadline = setTimeout(() => refuse(socket, "too_slow"), Duration.toMillis(limits.timeout))
      socket.once("close", () => {
        open.delete(socket)
        clearTimeout(deadline)
      })
      socket.on("error", () => socket.destroy())
      const peer = peerAddress(socket)
      readFrame(socket, budget, (payload) => {
        // Closed already: nothing to cut, nothing to count.
        if (payload === "ended") return
        if (typeof payload === "string") return refuse(socket, payload)
        onRequest(payload, peer, socket)
      })
    }
  })
