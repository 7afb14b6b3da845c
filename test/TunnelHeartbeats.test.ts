import { describe, expect, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import { Heartbeats } from "../src/Tunnel/internal/Heartbeats.js"
import { MemoryChannel } from "../src/Tunnel/internal/MemoryChannel.js"
import { Session } from "../src/Tunnel/internal/Session.js"

/**
 * One fiber keeps the heartbeats of every session of a tunnel (Heartbeats). Sessions here are real yamux
 * sessions linked in memory, and time is the TestClock's: each is pinged on its own schedule, a silent one is
 * closed exactly when its ping's timeout runs out, an expired one gets GoAway and closes at its instant, and the
 * fiber, gone with the last session, starts again for the next.
 */

/** A linked pair; `silence` stops the far end from answering (nothing is delivered to it). */
const pair = () => {
  const toFar = new MemoryChannel()
  const toNear = new MemoryChannel()
  const near = new Session(toFar, { role: "server" })
  const far = new Session(toNear, { role: "client" })
  toFar.peer = far
  toNear.peer = near
  const silence = () => {
    toFar.paused = true
  }
  return { near, far, silence }
}

/** Lets fibers woken by the TestClock, and the in-memory link's deliveries (setImmediate), run. */
const settle = Effect.promise(() => new Promise((resolve) => setImmediate(resolve))).pipe(
  Effect.zipRight(Effect.yieldNow()),
  Effect.repeatN(20),
)

const advance = (millis: number) => Effect.zipRight(TestClock.adjust(millis), settle)

const heartbeat = { interval: "10 seconds", timeout: "5 seconds" } as const

describe("Heartbeats: one fiber for every session of a tunnel", () => {
  it.effect("closes each silent session at its own interval + timeout, and keeps those that answer", () =>
    Effect.gen(function* () {
      const heartbeats = new Heartbeats(heartbeat)
      const answering = pair()
      const silentEarly = pair()
      yield* heartbeats.watch(answering.near, undefined)
      yield* heartbeats.watch(silentEarly.near, undefined)
      silentEarly.silence()
      yield* advance(3_000)
      const silentLate = pair()
      yield* heartbeats.watch(silentLate.near, undefined)
      silentLate.silence()

      yield* advance(11_999) // 14,999 ms: the early one's ping (sent at 10 s) is 1 ms short of its timeout
      expect(silentEarly.near.closed).toBe(false)
      yield* advance(1)
      expect(silentEarly.near.closeReason).toEqual({ _tag: "Local", message: "heartbeat timeout" })
      expect(silentLate.near.closed).toBe(false)
      yield* advance(2_999) // 17,999 ms: the late one started at 3 s
      expect(silentLate.near.closed).toBe(false)
      yield* advance(1)
      expect(silentLate.near.closeReason).toEqual({ _tag: "Local", message: "heartbeat timeout" })

      for (let round = 0; round < 5; round++) yield* advance(10_000)
      expect(answering.near.closed).toBe(false)
      answering.near.close("done")
      yield* settle
    }),
  )

  it.effect("sends GoAway and closes a session at its credential's expiry, not before", () =>
    Effect.gen(function* () {
      const heartbeats = new Heartbeats(heartbeat)
      const later = pair()
      const sooner = pair()
      let goAwayHeard = false
      sooner.far.onGoAway(() => {
        goAwayHeard = true
      })
      yield* heartbeats.watch(later.near, 60_000)
      // Watched after a session due later: the fiber, asleep until then, wakes for the sooner one.
      yield* heartbeats.watch(sooner.near, 2_500)
      yield* advance(2_499)
      expect(sooner.near.closed).toBe(false)
      yield* advance(1)
      expect(sooner.near.closeReason).toEqual({ _tag: "Local", message: "token expired" })
      expect(goAwayHeard).toBe(true)
      expect(later.near.closed).toBe(false)
      later.near.close("done")
      yield* settle
    }),
  )

  it.effect("stops with the last session, and keeps time again for the next one", () =>
    Effect.gen(function* () {
      const heartbeats = new Heartbeats(heartbeat)
      const first = pair()
      yield* heartbeats.watch(first.near, undefined)
      first.near.close("done")
      yield* advance(30_000)

      const second = pair()
      yield* heartbeats.watch(second.near, undefined)
      second.silence()
      yield* advance(14_999)
      expect(second.near.closed).toBe(false)
      yield* advance(1)
      expect(second.near.closeReason).toEqual({ _tag: "Local", message: "heartbeat timeout" })
    }),
  )
})
