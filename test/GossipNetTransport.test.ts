import * as dgram from "node:dgram"
import * as net from "node:net"
import { Effect, Exit, HashMap, Logger, Metric, Option, Scope } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import * as NetTransport from "../src/Gossip/NetTransport.js"
import * as Streams from "../src/Gossip/Streams.js"
import type { Transport } from "../src/Gossip/Transport.js"
import * as Metrics from "../src/Metrics.js"
import { waitFor } from "./support/http.js"

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** The warnings the transports of a test logged, with their annotations. */
const warnings: Array<{ readonly message: unknown; readonly annotations: Record<string, unknown> }> = []
const collectWarnings = Logger.replace(
  Logger.defaultLogger,
  Logger.make(({ logLevel, message, annotations }) => {
    if (logLevel._tag === "Warning")
      warnings.push({ message, annotations: Object.fromEntries(HashMap.toEntries(annotations)) })
  }),
)
afterEach(() => {
  warnings.length = 0
})

/** How many connections the gossip port has cut for `reason`, in this process so far. */
const refusedCount = async (reason: string): Promise<number> =>
  Number(
    (
      await Effect.runPromise(
        Metric.value(Metrics.gossipRefusedStreams.pipe(Metric.tagged("reason", reason))),
      )
    ).count,
  )

/** Runs `cut`, and says how many more connections were then counted as cut for `reason`. */
const countsCut = async (reason: string, cut: () => Promise<unknown>): Promise<number> => {
  const before = await refusedCount(reason)
  await cut()
  return (await refusedCount(reason)) - before
}

/** The real gossip transport on an ephemeral port, answering every request with its own bytes. */
const startEcho = async (limits: Partial<Streams.InboundLimits>): Promise<Transport> =>
  (await startEchoScoped(limits)).transport

/** The same, with a way to stop it before the test ends. */
const startEchoScoped = async (limits: Partial<Streams.InboundLimits>) => {
  const scope = await Effect.runPromise(Scope.make())
  const stop = () => Effect.runPromise(Scope.close(scope, Exit.void))
  cleanups.push(stop)
  const transport = await Effect.runPromise(
    Effect.gen(function* () {
      const transport = yield* NetTransport.make(
        { host: "127.0.0.1", port: 0 },
        (bound) => `127.0.0.1:${bound.port}`,
        { ...Streams.defaultInboundLimits, ...limits },
      )
      yield* transport.serve({
        packet: () => Effect.void,
        request: (bytes) => Effect.succeed(Option.some(bytes)),
      })
      return transport
    }).pipe(Scope.extend(scope), Effect.provide(collectWarnings)),
  )
  return { transport, stop }
}

const portOf = (transport: Transport) => Number(transport.address.split(":")[1])

/** Whether a request of `size` bytes comes back whole. */
const echoes = (transport: Transport, size: number): Promise<boolean> =>
  Effect.runPromise(
    transport.request(transport.address, Buffer.alloc(size, 7)).pipe(
      Effect.map((answer) => answer.length === size),
      Effect.orElseSucceed(() => false),
    ),
  )

interface RawPeer {
  readonly socket: net.Socket
  /** Settles once the node has cut (or the test has closed) the connection. */
  readonly closed: Promise<void>
  readonly received: Array<Buffer>
}

/** A raw connection to the gossip port, connected; half-open, it stays open after the node's answer ends. */
const connectRaw = async (transport: Transport, allowHalfOpen = false): Promise<RawPeer> => {
  const socket = net.connect({ port: portOf(transport), host: "127.0.0.1", allowHalfOpen })
  const received: Array<Buffer> = []
  socket.on("data", (chunk: Buffer) => received.push(chunk))
  socket.on("error", () => {})
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()))
  cleanups.push(async () => void socket.destroy())
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()))
  return { socket, closed, received }
}

const lengthPrefix = (length: number) => {
  const prefix = Buffer.alloc(4)
  prefix.writeUInt32BE(length)
  return prefix
}

describe("the gossip port's limits on peers it has not authenticated", () => {
  it("cuts a connection past the cap at once, keeps the ones open, and takes requests again once one closes", async () => {
    const transport = await startEcho({ maxStreams: 4 })
    const silent = await Promise.all([1, 2, 3, 4].map(() => connectRaw(transport)))
    const cut = await countsCut("too_many_streams", async () => {
      const extra = await connectRaw(transport)
      await extra.closed
    })
    expect(cut).toBe(1)
    expect(silent.map((peer) => peer.socket.destroyed)).toEqual([false, false, false, false])
    expect(warnings).toEqual([
      {
        message: ["cut gossip connections"],
        annotations: { subsystem: "gossip", too_many_streams: 1, over_budget: 0, too_large: 0, too_slow: 0 },
      },
    ])
    expect(await echoes(transport, 10)).toBe(false)

    silent[0]?.socket.destroy()
    await waitFor("a request answered with a connection free", () => echoes(transport, 10))
  })

  it("cuts the request whose bytes overrun the budget, not the one that holds them, and gets them back from a reset", async () => {
    const budgetBytes = 1024 * 1024
    const transport = await startEcho({ budgetBytes })
    // An exchange that ends gives back what it held, once: counted twice, the budget would grow past its size.
    expect(await echoes(transport, 600_000)).toBe(true)
    // A request announcing 1,000,000 bytes, 700,000 of them sent, then nothing: the node holds them.
    const holder = await connectRaw(transport)
    holder.socket.write(Buffer.concat([lengthPrefix(1_000_000), Buffer.alloc(700_000)]))
    const cut = await countsCut("over_budget", () =>
      waitFor("a 400 kB request cut while the held bytes leave no room", async () => {
        return !(await echoes(transport, 400_000))
      }),
    )
    expect(cut).toBe(1)
    // Small ones still fit beside it, and the holder is still open.
    expect(await echoes(transport, 100_000)).toBe(true)
    expect(holder.socket.destroyed).toBe(false)

    // A reset is no end of stream: what the holder held must come back all the same.
    // A peer that goes away is not one the node cut.
    const cuts = await Promise.all(
      ["too_many_streams", "over_budget", "too_large", "too_slow"].map(refusedCount),
    )
    holder.socket.resetAndDestroy()
    await waitFor("a 400 kB request answered once the holder reset", () => echoes(transport, 400_000))
    expect(
      await Promise.all(["too_many_streams", "over_budget", "too_large", "too_slow"].map(refusedCount)),
    ).toEqual(cuts)
  })

  it("cuts a request dripped in slower than the deadline, though each byte would reset an idle timer", async () => {
    const transport = await startEcho({ timeout: "300 millis" })
    const dripper = await connectRaw(transport)
    dripper.socket.write(lengthPrefix(100))
    // 100 bytes at one per 50 ms would take 5 s; no pause between them is long enough to be idle.
    const drip = setInterval(() => dripper.socket.write(Buffer.of(1)), 50)
    cleanups.push(async () => clearInterval(drip))
    expect(await countsCut("too_slow", () => dripper.closed)).toBe(1)
    clearInterval(drip)
    expect(dripper.socket.bytesWritten).toBeLessThan(104)
    expect(dripper.received).toEqual([])
  })

  it("cuts a peer that holds its connection after its request, dripping bytes the node does not read", async () => {
    const transport = await startEcho({ timeout: "300 millis" })
    const lingerer = await connectRaw(transport, true)
    lingerer.socket.write(Buffer.concat([lengthPrefix(3), Buffer.from("abc")]))
    const drip = setInterval(() => lingerer.socket.write(Buffer.of(1)), 50)
    cleanups.push(async () => clearInterval(drip))
    expect(await countsCut("too_slow", () => lingerer.closed)).toBe(1)
    clearInterval(drip)
    // It had its answer; what it sent after the request kept it open only until the deadline.
    expect(Buffer.concat(lingerer.received).subarray(4).toString()).toBe("abc")
  })

  it("cuts a request that announces more than 16 MiB before taking any of it, long before the deadline", async () => {
    const transport = await startEcho({ timeout: "60 seconds" })
    const greedy = await connectRaw(transport)
    greedy.socket.write(lengthPrefix(16 * 1024 * 1024 + 1))
    expect(await countsCut("too_large", () => greedy.closed)).toBe(1)
    expect(greedy.received).toEqual([])
    expect(await echoes(transport, 16 * 1024 * 1024)).toBe(true)
  })

  it("closes the connections still open when it stops", async () => {
    const { transport, stop } = await startEchoScoped({ timeout: "60 seconds" })
    const waiting = await connectRaw(transport)
    waiting.socket.write(lengthPrefix(10))
    await stop()
    await waiting.closed
    expect(waiting.received).toEqual([])
  })

  it("reads a length that arrives a byte at a time", async () => {
    const transport = await startEcho({})
    const slow = await connectRaw(transport)
    for (const byte of lengthPrefix(2)) {
      slow.socket.write(Buffer.of(byte))
      // Apart, so that each is a read of its own.
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    slow.socket.write("ok")
    await waitFor("the answer", () => Buffer.concat(slow.received).length === 6)
    expect(Buffer.concat(slow.received).subarray(4).toString()).toBe("ok")
  })
})

describe("the gossip transport on every interface (the default :8003)", () => {
  it("names an IPv4 peer by its IPv4 address, for datagrams and requests alike", async () => {
    const scope = await Effect.runPromise(Scope.make())
    cleanups.push(() => Effect.runPromise(Scope.close(scope, Exit.void)))
    const heard: Array<string> = []
    const transport = await Effect.runPromise(
      Effect.gen(function* () {
        const transport = yield* NetTransport.make(
          { host: "", port: 0 },
          (bound) => `127.0.0.1:${bound.port}`,
          Streams.defaultInboundLimits,
        )
        yield* transport.serve({
          packet: (_bytes, from) => Effect.sync(() => void heard.push(`packet from ${from}`)),
          request: (bytes, from) =>
            Effect.sync(() => heard.push(`request from ${from}`)).pipe(Effect.as(Option.some(bytes))),
        })
        return transport
      }).pipe(Scope.extend(scope)),
    )
    const udp = dgram.createSocket("udp4")
    cleanups.push(async () => void udp.close())
    udp.send(Buffer.from("hello"), portOf(transport), "127.0.0.1")
    expect(await echoes(transport, 10)).toBe(true)
    await waitFor("the datagram", () => heard.some((line) => line.startsWith("packet")))
    for (const line of heard) expect(line).toMatch(/^(packet|request) from 127\.0\.0\.1:\d+$/)
  })
})
