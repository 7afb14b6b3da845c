import * as dgram from "node:dgram"
import * as net from "node:net"
import { Effect, FiberSet, Option, type Scope } from "effect"
import { type HostPort, parseDialAddress, peerAddress } from "../Domain/Address.js"
import { formatAddressInfo, type ListenError, listenError } from "../internal/Listen.js"
import * as Streams from "./Streams.js"
import { type Handler, type Transport, TransportError } from "./Transport.js"

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
  limits: Streams.InboundLimits = Streams.defaultInboundLimits,
): Effect.Effect<Transport, ListenError, Scope.Scope> =>
  Effect.gen(function* () {
    const tcp = yield* bindTcp(bind)
    const bound = tcp.address() as net.AddressInfo
    // UDP takes exactly the port TCP got, which matters when the configured port is 0.
    const udp = yield* bindUdp({ host: bind.host, port: bound.port })
    // Where it listens, as every listener says; where peers are told to reach it is the server's "gossip started".
    yield* Effect.logInfo("gossip listening").pipe(
      Effect.annotateLogs({ subsystem: "gossip", addr: formatAddressInfo(bound) }),
    )
    const requestTimeout = limits.timeout
    // This node's own requests still open; incoming ones are Streams.acceptRequests's.
    const outbound = new Set<net.Socket>()
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const socket of outbound) socket.destroy()
      }),
    )

    const send = (address: string, packet: Uint8Array) =>
      Effect.sync(() => {
        // A datagram is best effort: an address no datagram can reach (port 0, a gossiped typo), an unknown
        // host or a full buffer is a lost packet, like any other. Node throws for some of them at once, which
        // must not end the round (or the push) that sent it.
        const target = parseDialAddress(address)
        if (target === undefined) return
        try {
          udp.send(packet, target.port, target.host, () => {})
        } catch {
          // Lost.
        }
      })

    const request = (address: string, payload: Uint8Array) =>
      Effect.async<Uint8Array, TransportError>((resume) => {
        const target = parseDialAddress(address)
        if (target === undefined)
          return resume(Effect.fail(new TransportError({ reason: "unreachable", address })))
        const socket = net.connect(target.port, target.host)
        outbound.add(socket)
        socket.once("close", () => outbound.delete(socket))
        socket.once("error", () =>
          resume(Effect.fail(new TransportError({ reason: "unreachable", address }))),
        )
        socket.once("connect", () => {
          for (const part of Streams.frame(payload)) socket.write(part)
          Streams.readFrame(socket, Streams.unlimited, (answer) => {
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
          run(handler.packet(packet, peerAddress({ remoteAddress: peer.address, remotePort: peer.port })))
        const onConnection = yield* Streams.acceptRequests(limits, (payload, peer, socket) =>
          run(
            handler.request(payload, peer).pipe(
              Effect.map(
                Option.match({
                  onNone: () => socket.end(),
                  onSome: (answer) => {
                    const [length, body] = Streams.frame(answer)
                    socket.write(length as Buffer)
                    socket.end(body)
                  },
                }),
              ),
            ),
          ),
        )
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
