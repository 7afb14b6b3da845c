import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Logger, Supervisor, TestClock } from "effect"
import { Heartbeats } from "../src/Tunnel/internal/Heartbeats.js"
import { MemoryChannel } from "../src/Tunnel/internal/MemoryChannel.js"
import { Session } from "../src/Tunnel/internal/Session.js"

/**
 * One fiber keeps the heartbeats of every session of a tunnel (Heartbeats). Sessions here are real yamux
 * sessions linked in memory, and time is the TestClock's: each is pinged on its own schedule, a silent one is
 * closed exactly when its ping's timeout runs out, an expired one gets GoAway and closes at its instant, and the
 * fiber, gone with the last session, starts again for the next.
 */

/** A linked pair; `silence` stops the far end from answering (nothing is delivered to it until `toFar.resume()`). */
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
  return { near, far, silence, toFar }
}

/** Lets fibers woken by the TestClock, and the in-memory link's deliveries (setImmediate), run. */
const settle = Effect.promise(() => new Promise((resolve) => setImmediate(resolve))).pipe(
  Effect.zipRight(Effect.yieldNow()),
  Effect.repeatN(20),
)

const advance = (millis: number) => Effect.zipRight(TestClock.adjust(millis), settle)

/**
 * Advances in 1 s steps, each settled: where an answered ping's deadline falls inside one long adjust, the TestClock
 * can reach the deadline before the answer, which needs the link's I/O turns, has been read.
 */
const advanceSettled = (millis: number) => Effect.repeatN(advance(1_000), millis / 1_000 - 1)

const heartbeat = { interval: "10 seconds", timeout: "5 seconds" } as const

/** Advances `millis` and checks that `session` closed then for `message`, not 1 ms before. */
const closesAfter = (session: Session, millis: number, message: string) =>
  Effect.gen(function* () {
    yield* advance(millis - 1)
    expect(session.closed).toBe(false)
    yield* advance(1)
    expect(session.closeReason).toEqual({ _tag: "Local", message })
  })

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

      // At 15 s: the early one's ping, sent at 10 s, times out; the late one started at 3 s.
      yield* closesAfter(silentEarly.near, 12_000, "heartbeat timeout")
      expect(silentLate.near.closed).toBe(false)
      yield* closesAfter(silentLate.near, 3_000, "heartbeat timeout")

      yield* advanceSettled(50_000)
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
      yield* advance(1_000) // expiries are wall-clock instants, converted to the timeline's monotonic time
      yield* heartbeats.watch(later.near, 60_000)
      yield* settle
      // Watched once the fiber sleeps until the first one's ping is due: it wakes for the sooner expiry.
      yield* heartbeats.watch(sooner.near, 3_500)
      yield* closesAfter(sooner.near, 2_500, "token expired")
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
      yield* closesAfter(second.near, 15_000, "heartbeat timeout")
    }),
  )

  it.effect("ends each of many sessions at its own expiry, whatever order they were watched in", () =>
    Effect.gen(function* () {
      const heartbeats = new Heartbeats(heartbeat)
      // Out of order, with ties, and interleaved with the pings due at 10 s and 20 s: the timeline keeps them sorted.
      const expiries = [7_300, 2_100, 11_500, 2_100, 9_900, 500, 15_000, 4_400, 20_000, 10_000, 3_200, 6_600]
      const sessions = expiries.map(() => pair())
      for (const [i, expiry] of expiries.entries())
        yield* heartbeats.watch((sessions[i] as ReturnType<typeof pair>).near, expiry)
      let now = 0
      for (const expiry of [...new Set(expiries)].sort((a, b) => a - b)) {
        yield* advance(expiry - 1 - now)
        const due = expiries.map((at, i) => (at === expiry ? i : -1)).filter((i) => i >= 0)
        expect(due.map((i) => sessions[i]?.near.closed)).toEqual(due.map(() => false))
        yield* advance(1)
        now = expiry
        expect(due.map((i) => sessions[i]?.near.closeReason)).toEqual(
          due.map(() => ({ _tag: "Local", message: "token expired" })),
        )
        const notYet = expiries.filter((at) => at > expiry).length
        expect(sessions.filter((session) => !session.near.closed)).toHaveLength(notYet)
      }
    }),
  )

  it.effect(
    "keeps a session whose answers come late but within the timeout, with an interval shorter than it",
    () =>
      Effect.gen(function* () {
        const heartbeats = new Heartbeats({ interval: "2 seconds", timeout: "5 seconds" })
        const { near, toFar } = pair()
        yield* heartbeats.watch(near, undefined)
        // Each ping waits 2 s for its answer (the link to the far end is held, then let through), so the deadline
        // of one ping passes while the next is in flight: that deadline must not count for the next ping.
        for (let round = 0; round < 6; round++) {
          toFar.paused = true
          yield* advance(2_000)
          yield* advance(2_000)
          toFar.resume()
          yield* settle
          expect(near.closed).toBe(false)
        }
        // Still pinged: silent from now on, it is closed at its next ping's deadline.
        toFar.paused = true
        yield* closesAfter(near, 7_000, "heartbeat timeout")
      }),
  )

  it.effect("runs one fiber, sleeping until the next thing due, and none after the last session closed", () =>
    Effect.gen(function* () {
      const heartbeats = new Heartbeats(heartbeat)
      const fibers = yield* Supervisor.track
      const first = pair()
      const second = pair()
      yield* heartbeats.watch(first.near, undefined).pipe(Effect.supervised(fibers))
      yield* heartbeats.watch(second.near, 30_000)
      yield* settle
      expect(Chunk.toArray(yield* TestClock.sleeps())).toEqual([10_000])
      yield* advance(10_000)
      // The pings' deadlines: answered, so nothing to do then, but the timeline drops stale events only when due.
      expect(Chunk.toArray(yield* TestClock.sleeps())).toEqual([15_000])
      first.near.close("done")
      yield* settle
      second.near.close("done")
      yield* settle
      // Gone at once, not at its next wake: its sleep would keep a process alive.
      expect(yield* fibers.value).toEqual([])
      // The time of their pings and expiry passes: the TestClock lists a sleep until its time comes, even one
      // interrupted, so an empty list after that says the fiber ended and did not sleep again.
      yield* advance(60_000)
      expect(Chunk.toArray(yield* TestClock.sleeps())).toEqual([])
      const third = pair()
      yield* heartbeats.watch(third.near, undefined)
      third.silence()
      yield* closesAfter(third.near, 15_000, "heartbeat timeout")
      // That emptied the timeline; a fourth session starts the fiber again.
      const fourth = pair()
      yield* heartbeats.watch(fourth.near, undefined)
      fourth.silence()
      yield* closesAfter(fourth.near, 15_000, "heartbeat timeout")
    }),
  )

  it.effect(
    "logs one warning for the sessions whose pings went unanswered at the same instant, and none else",
    () => {
      const warnings: Array<{ readonly message: unknown; readonly sessions: unknown }> = []
      const logger = Logger.make(({ logLevel, message, annotations }) => {
        if (logLevel._tag === "Warning")
          warnings.push({
            message,
            sessions: annotations.pipe((map) => [...map].find(([key]) => key === "sessions")?.[1]),
          })
      })
      return Effect.gen(function* () {
        const heartbeats = new Heartbeats(heartbeat)
        const closedEarly = pair()
        const expiring = pair()
        const answering = pair()
        const silent = [pair(), pair()]
        yield* heartbeats.watch(closedEarly.near, undefined)
        yield* heartbeats.watch(expiring.near, 12_000)
        yield* heartbeats.watch(answering.near, undefined)
        for (const { near, silence } of silent) {
          yield* heartbeats.watch(near, undefined)
          silence()
        }
        closedEarly.near.close("done")
        yield* advance(10_000)
        expect(warnings).toEqual([])
        yield* advance(2_000)
        expect(expiring.near.closed).toBe(true)
        yield* advance(3_000)
        expect(silent.map(({ near }) => near.closed)).toEqual([true, true])
        expect(warnings).toEqual([{ message: ["heartbeat timed out; closing session"], sessions: 2 }])
        yield* advanceSettled(30_000)
        expect(warnings).toHaveLength(1)
        answering.near.close("done")
        yield* settle
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
    },
  )
})
