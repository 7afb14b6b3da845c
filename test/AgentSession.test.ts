import { describe, expect, it } from "@effect/vitest"
import { Chunk, Clock, Effect, Fiber, Logger, Option, Queue, TestClock } from "effect"
import * as Agent from "../src/Agent.js"
import { EndpointId } from "../src/Domain/EndpointId.js"
import * as Tunnel from "../src/Tunnel.js"

/**
 * The agent's and the server's session logic over Tunnel.layerMemory: no node and no socket, time on the
 * TestClock, so backoff, healthy sessions, GoAway, heartbeats and token expiry are checked exactly.
 */

const heartbeat = { interval: "10 seconds", timeout: "5 seconds" } as const
const healthyAfter = 10_000

/** An agent with one endpoint; nothing is forwarded in these tests, only sessions come and go. */
const runAgent = Agent.run({
  serverUrl: "http://pico.test:8001",
  endpoints: [{ id: EndpointId("e"), host: "127.0.0.1", port: 1 }],
  forwardTimeout: "1 second",
  healthyAfter,
}).pipe(Effect.forkScoped)

const nextConnection = Effect.flatMap(Tunnel.TunnelMemory, ({ accepted }) => Queue.take(accepted))

/** Lets fibers woken by the TestClock (or by the in-memory link's real I/O) run. */
const settle = Effect.yieldNow().pipe(Effect.repeatN(50))

/** Waits until some fiber sleeps until at most `millis` from now: the agent's retry delay has started. */
const retryScheduled = (millis: number) =>
  Effect.gen(function* () {
    yield* Effect.yieldNow()
    const now = yield* Clock.currentTimeMillis
    return Chunk.some(yield* TestClock.sleeps(), (wake) => wake <= now + millis)
  }).pipe(Effect.repeat({ until: (scheduled) => scheduled, times: 1_000 }))

/** Advances virtual time and says whether the agent opened a new session meanwhile. */
const reconnectedAfter = (millis: number) =>
  Effect.gen(function* () {
    const { accepted } = yield* Tunnel.TunnelMemory
    yield* TestClock.adjust(millis)
    yield* settle
    return Option.isSome(yield* Queue.poll(accepted))
  })

describe("the agent's sessions (Tunnel.layerMemory, TestClock)", () => {
  it.scoped("connect to the endpoint's listener URL", () =>
    Effect.gen(function* () {
      yield* runAgent
      expect((yield* nextConnection).url).toBe("ws://pico.test:8001/pico/v1/listener/e")
    }).pipe(Effect.provide(Tunnel.layerMemory(heartbeat))),
  )

  it.scoped("back off 1 s ± 20% after a session that ended young", () =>
    Effect.gen(function* () {
      yield* runAgent
      const first = yield* nextConnection
      yield* first.link.server.close("gone young")
      yield* first.link.client.closed
      yield* retryScheduled(1200)
      expect(yield* reconnectedAfter(799)).toBe(false)
      expect(yield* reconnectedAfter(401)).toBe(true)
    }).pipe(Effect.provide(Tunnel.layerMemory(heartbeat))),
  )

  it.scoped("reconnect at once after a healthy session, the backoff started over", () =>
    Effect.gen(function* () {
      yield* runAgent
      const first = yield* nextConnection
      yield* TestClock.adjust(healthyAfter)
      yield* first.link.server.close("healthy, then gone")
      yield* first.link.client.closed
      expect(yield* reconnectedAfter(0)).toBe(true)
    }).pipe(Effect.provide(Tunnel.layerMemory(heartbeat))),
  )

  it.scoped("move to a new session on GoAway and keep the old one open for its streams", () =>
    Effect.gen(function* () {
      yield* runAgent
      const first = yield* nextConnection
      const oldClosed = yield* Effect.fork(first.link.client.closed)
      yield* first.link.server.goAway
      const second = yield* nextConnection
      expect(second.url).toBe(first.url)
      yield* settle
      expect(Option.isNone(yield* Fiber.poll(oldClosed))).toBe(true)
      // A stream still opens on the old session; closed again at once, as nothing reads it.
      const stream = yield* first.link.server.openStream
      expect(stream.destroyed).toBe(false)
      stream.destroy()
    }).pipe(Effect.provide(Tunnel.layerMemory(heartbeat))),
  )

  it.scoped("close a session whose peer stops answering pings, after interval + timeout", () =>
    Effect.gen(function* () {
      yield* runAgent
      const first = yield* nextConnection
      yield* first.link.cut
      yield* TestClock.adjust(10_000)
      yield* settle
      const closed = yield* Effect.fork(first.link.client.closed)
      yield* TestClock.adjust(4_999)
      yield* settle
      expect(Option.isNone(yield* Fiber.poll(closed))).toBe(true)
      yield* TestClock.adjust(1)
      expect(yield* Fiber.join(closed)).toEqual({ _tag: "Local", message: "heartbeat timeout" })
    }).pipe(Effect.provide(Tunnel.layerMemory(heartbeat))),
  )
})

describe("heartbeats over a live link (Tunnel.memoryLink, TestClock)", () => {
  it.scoped("keep a session whose peer answers every ping, through many intervals", () =>
    Effect.gen(function* () {
      const link = yield* Tunnel.memoryLink(heartbeat)
      const closed = yield* Effect.fork(link.client.closed)
      for (let interval = 0; interval < 6; interval++) {
        yield* TestClock.adjust(10_000)
        yield* settle
        yield* TestClock.adjust(4_999)
        yield* settle
      }
      expect(Option.isNone(yield* Fiber.poll(closed))).toBe(true)
    }),
  )

  it.scoped("end quietly on a session closed for another reason, with a ping in flight", () => {
    const logged: Array<unknown> = []
    return Effect.gen(function* () {
      const link = yield* Tunnel.memoryLink(heartbeat)
      yield* TestClock.adjust(10_000)
      yield* link.client.close("done")
      yield* settle
      yield* TestClock.adjust(20_000)
      yield* settle
      expect(yield* link.client.closed).toEqual({ _tag: "Local", message: "done" })
      expect(logged).toEqual([])
    }).pipe(
      Effect.provide(
        Logger.replace(
          Logger.defaultLogger,
          Logger.make(({ message }) => logged.push(message)),
        ),
      ),
    )
  })
})

describe("a server session's token expiry (Tunnel.memoryLink, TestClock)", () => {
  it.scoped("sends GoAway, then closes, at the expiry instant and not before", () =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const link = yield* Tunnel.memoryLink(heartbeat, { expiresAt: now + 3_000 })
      const goingAway = yield* Effect.fork(link.client.peerGoingAway)
      yield* TestClock.adjust(2_999)
      yield* settle
      expect(Option.isNone(yield* Fiber.poll(goingAway))).toBe(true)
      yield* TestClock.adjust(1)
      yield* Fiber.join(goingAway)
      expect(yield* link.server.closed).toEqual({ _tag: "Local", message: "token expired" })
      expect((yield* link.client.closed)._tag).toBe("TransportClosed")
    }),
  )
})
