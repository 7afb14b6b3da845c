import * as dgram from "node:dgram"
import * as net from "node:net"
import { Duration, Effect, FiberSet, Option, type Scope } from "effect"
import { formatHostPort, type HostPort, parseHostPort } from "../Domain/Address.js"
import { type ListenError, listenError } from "../internal/Listen.js"
import * as ThrottledLog from "../internal/ThrottledLog.js"
import * as Metrics from "../Metrics.js"
import { type Handler, type Transport, TransportError } from "./Transport.js"

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

/** Why an incoming connection was cut before its request was read; the metric's `reason` label. */
type Refusal = "too_many_streams" | "over_budget" | "too_large" | "too_slow"
const refusals: ReadonlyArray<Refusal> = ["too_many_streams", "over_budget", "too_large", "too_slow"]

/** What a frame's reader has left of the bytes it may hold; shared by every incoming connection. */
interface Budget {
  left: number
}
const unlimited: Budget = { left: Number.POSITIVE_INFINITY }

const frame = (payload: Uint8Array): Array<Buffer> => {
  const length = Buffer.allocUnsafe(LENGTH_PREFIX)
  length.writeUInt32BE(payload.length, 0)
  return [length, Buffer.from(payload.buffer, payload.byteOffset, payload.length)]
}

/**
 * Reads exactly one length-prefixed frame from a socket, then stops listening: the payload, or why there is
 * none ("ended": the socket ended or closed first). What it holds is taken from `budget` and given back when it
 * is done, however it ends.
 */
const readFrame = (
  socket: net.Socket,
  budget: Budget,
  onFrame: (payload: Buffer | "ended" | "too_large" | "over_budget") => void,
): void => {
  const chunks: Array<Buffer> = []
  let received = 0
  let done = false
  const finish = (payload: Buffer | "ended" | "too_large" | "over_budget") => {
    if (done) return
    done = true
    budget.left += received
    socket.off("data", onData)
    socket.off("end", onEnd)
    socket.off("close", onEnd)
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
  const onEnd = () => finish("ended")
  socket.on("data", onData)
  socket.on("end", onEnd)
  // A reset ends nothing: without this, what the frame held would never go back to the budget.
  socket.on("close", onEnd)
}

const bindTcp = (address: HostPort) =>
  Effect.acquireRelease(
    Effect.async<net.Server, ListenError>((resume) => {
      const server = net.createServer()
      server.once("error", (error) => resume(Effect.fail(listenError("gossip", address, error))))
      server.listen(address.port, address.host === "" ? undefined : address.host, () =>
        resume(Effect.succeed(server)),
      )
    }),
    (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void))),
  )

const bindUdp = (address: HostPort) =>
  Effect.acquireRelease(
    Effect.async<dgram.Socket, ListenError>((resume) => {
      const socket = dgram.createSocket({
        type: net.isIPv6(address.host) || address.host === "" ? "udp6" : "udp4",
      })
      socket.once("error", (error) => resume(Effect.fail(listenError("gossip", address, error))))
      socket.bind(address.port, address.host === "" ? undefined : address.host, () =>
        resume(Effect.succeed(socket)),
      )
    }),
    (socket) => Effect.sync(() => socket.close()),
  )

/**
 * Gossip's real network: UDP datagrams for digests and deltas, and TCP request streams (one length-prefixed
 * request, one length-prefixed answer) for joins, leaves and deltas too large for a datagram — both on the same
 * port. `advertise` is the address peers are told to use; empty means the bound one.
 */
export const make = (
  bind: HostPort,
  advertise: (bound: net.AddressInfo) => string,
  limits: InboundLimits = defaultInboundLimits,
): Effect.Effect<Transport, ListenError, Scope.Scope> =>
  Effect.gen(function* () {
    const tcp = yield* bindTcp(bind)
    const bound = tcp.address() as net.AddressInfo
    // UDP takes exactly the port TCP got, which matters when the configured port is 0.
    const udp = yield* bindUdp({ host: bind.host, port: bound.port })
    const requestTimeout = limits.timeout
    const connections = new Set<net.Socket>()
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const socket of connections) socket.destroy()
      }),
    )

    const send = (address: string, packet: Uint8Array) =>
      Effect.sync(() => {
        const target = parseHostPort(address)
        // A datagram is best effort: an unknown host or a full buffer is a lost packet, like any other.
        if (target !== undefined) udp.send(packet, target.port, target.host, () => {})
      })

    const request = (address: string, payload: Uint8Array) =>
      Effect.async<Uint8Array, TransportError>((resume) => {
        const target = parseHostPort(address)
        if (target === undefined)
          return resume(Effect.fail(new TransportError({ reason: "unreachable", address })))
        const socket = net.connect(target.port, target.host)
        connections.add(socket)
        socket.once("close", () => connections.delete(socket))
        socket.once("error", () =>
          resume(Effect.fail(new TransportError({ reason: "unreachable", address }))),
        )
        socket.once("connect", () => {
          for (const part of frame(payload)) socket.write(part)
          readFrame(socket, unlimited, (answer) => {
            socket.end()
            resume(
              typeof answer === "string"
                ? Effect.fail(new TransportError({ reason: "closed", address }))
                : Effect.succeed(answer),
            )
          })
        })
        return Effect.sync(() => socket.destroy())
      }).pipe(
        Effect.timeoutFail({
          duration: requestTimeout,
          onTimeout: () => new TransportError({ reason: "timeout", address }),
        }),
      )

    const serve = (handler: Handler) =>
      Effect.gen(function* () {
        // Each datagram and request is handled on a fiber of the serving scope, interrupted when it closes.
        const run = yield* FiberSet.makeRuntime<never>()
        const onMessage = (packet: Buffer, peer: dgram.RemoteInfo) =>
          run(handler.packet(packet, formatHostPort({ host: peer.address, port: peer.port })))
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
        let inbound = 0
        const onConnection = (socket: net.Socket) => {
          if (inbound >= limits.maxStreams) return refuse(socket, "too_many_streams")
          inbound++
          connections.add(socket)
          // The whole exchange, not just the request: a peer could otherwise hold its connection by dripping bytes
          // after its request, or by reading the answer a byte at a time. The node's own requests give up as soon.
          const deadline = setTimeout(() => refuse(socket, "too_slow"), Duration.toMillis(requestTimeout))
          socket.once("close", () => {
            inbound--
            connections.delete(socket)
            clearTimeout(deadline)
          })
          socket.on("error", () => socket.destroy())
          const peer = formatHostPort({ host: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 })
          readFrame(socket, budget, (payload) => {
            if (payload === "ended") return socket.destroy()
            if (typeof payload === "string") return refuse(socket, payload)
            run(
              handler.request(payload, peer).pipe(
                Effect.map(
                  Option.match({
                    onNone: () => socket.end(),
                    onSome: (answer) => {
                      const [length, body] = frame(answer)
                      socket.write(length as Buffer)
                      socket.end(body)
                    },
                  }),
                ),
              ),
            )
          })
        }
        udp.on("message", onMessage)
        tcp.on("connection", onConnection)
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            udp.off("message", onMessage)
            tcp.off("connection", onConnection)
          }),
        )
      })

    return { address: advertise(bound), send, request, serve }
  })
