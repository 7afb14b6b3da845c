import { type Clock, Duration, Effect } from "effect"
import type { Session } from "./Session.js"

/** A session being watched, and which of its heartbeat events is current. */
interface Watched {
  /** Dropped when the session closes: events still on the timeline must not keep a closed session alive. */
  session: Session | undefined
  /** Bumped each time its heartbeat moves on (a ping sent, an answer received): older events are stale. */
  step: number
}

/** Something due for a session at `at` (monotonic ms): a ping to send, an answer overdue, or its credential's end. */
interface Due {
  readonly at: number
  readonly watched: Watched
  readonly kind: "ping" | "answer" | "expiry"
  readonly step: number
}

/** Milliseconds on the clock's monotonic time, the base of every time on the timeline. */
const monotonicMillis = (clock: Clock.Clock): number => Number(clock.unsafeCurrentTimeNanos() / 1_000_000n)

/** A binary min-heap of events by time. */
class Timeline {
  private readonly items: Array<Due> = []

  get first(): Due | undefined {
    return this.items[0]
  }

  push(item: Due): void {
    const items = this.items
    items.push(item)
    let at = items.length - 1
    while (at > 0) {
      const parent = (at - 1) >> 1
      if ((items[parent] as Due).at <= item.at) break
      items[at] = items[parent] as Due
      at = parent
    }
    items[at] = item
  }

  pop(): Due | undefined {
    const items = this.items
    const first = items[0]
    const last = items.pop() as Due
    // Empty now, or `last` was the only item.
    if (items.length === 0) return first
    let at = 0
    for (;;) {
      const left = 2 * at + 1
      if (left >= items.length) break
      const right = left + 1
      const child = right < items.length && (items[right] as Due).at < (items[left] as Due).at ? right : left
      if ((items[child] as Due).at >= last.at) break
      items[at] = items[child] as Due
      at = child
    }
    items[at] = last
    return first
  }
}

/**
 * The heartbeats (and credential expiries) of every session of one tunnel, kept by one fiber: it sleeps until
 * the next thing due, pings the sessions whose interval has passed, closes those whose ping went unanswered for
 * the timeout, and sends GoAway then closes those whose credential has expired. One fiber per session would do
 * the same, at the cost of a fiber's memory per idle session (about 8 KB: most of what an idle session cost).
 * Times come from Effect's Clock, so tests drive them with TestClock: its monotonic time, so a wall clock
 * stepped by NTP neither closes sessions nor delays pings (an expiry, given in wall time, is converted once).
 * The fiber runs while any session is watched, and ends with the last one.
 */
export class Heartbeats {
  private readonly timeline = new Timeline()
  private readonly interval: number
  private readonly timeout: number
  private live = 0
  private running = false
  private clock: Clock.Clock | undefined
  /** When the fiber wakes next (Infinity while it waits for anything); an earlier event wakes it now. */
  private wakeAt = Number.POSITIVE_INFINITY
  private wake = Effect.unsafeMakeLatch(false)

  constructor(settings: {
    readonly interval: Duration.DurationInput
    readonly timeout: Duration.DurationInput
  }) {
    this.interval = Duration.toMillis(settings.interval)
    this.timeout = Duration.toMillis(settings.timeout)
  }

  /** Watches `session` until it closes: its first ping is due an interval from now; `expiresAt` in epoch ms. */
  watch(session: Session, expiresAt: number | undefined): Effect.Effect<void> {
    return Effect.flatMap(Effect.clock, (clock) => {
      const now = monotonicMillis(clock)
      const watched: Watched = { session, step: 0 }
      this.schedule({ at: now + this.interval, watched, kind: "ping", step: 0 })
      if (expiresAt !== undefined)
        this.schedule({
          at: now + (expiresAt - clock.unsafeCurrentTimeMillis()),
          watched,
          kind: "expiry",
          step: 0,
        })
      this.live++
      session.onClose(() => {
        watched.session = undefined
        // The last one: the fiber ends now rather than at its next wake (its sleep would keep the process up).
        if (--this.live === 0) this.wake.unsafeOpen()
      })
      if (this.running) return Effect.void
      this.running = true
      this.clock = clock
      return Effect.asVoid(Effect.forkDaemon(this.run))
    })
  }

  private schedule(due: Due): void {
    this.timeline.push(due)
    if (due.at < this.wakeAt) this.wake.unsafeOpen()
  }

  private readonly run: Effect.Effect<void> = Effect.suspend(() => {
    const now = monotonicMillis(this.clock as Clock.Clock)
    let timedOut = 0
    for (let next = this.timeline.first; next !== undefined && next.at <= now; next = this.timeline.first) {
      this.timeline.pop()
      if (this.handle(next, now)) timedOut++
    }
    if (this.live === 0) {
      this.running = false
      this.wakeAt = Number.POSITIVE_INFINITY
      return Effect.void
    }
    // A watched session always has its next ping, or its ping's deadline, on the timeline.
    const next = this.timeline.first as Due
    this.wakeAt = next.at
    this.wake.unsafeClose()
    const wait = Effect.raceFirst(Effect.sleep(next.at - now), this.wake.await)
    const warned =
      timedOut === 0
        ? Effect.void
        : Effect.logWarning("heartbeat timed out; closing session").pipe(
            Effect.annotateLogs({
              subsystem: "tunnel",
              timeout: Duration.format(this.timeout),
              sessions: timedOut,
            }),
          )
    return Effect.zipRight(warned, Effect.zipRight(wait, this.run))
  })

  /** Does what is due; says whether it closed a session for an unanswered ping. */
  private handle(due: Due, now: number): boolean {
    const { watched } = due
    const { session } = watched
    if (session === undefined || session.closed) return false
    switch (due.kind) {
      case "expiry":
        session.goAway()
        session.close("token expired")
        return false
      case "answer":
        if (due.step !== watched.step) return false
        session.close("heartbeat timeout")
        return true
      // Never stale: nothing moves a session's heartbeat on between scheduling its ping and sending it.
      case "ping":
        this.schedule({ at: now + this.timeout, watched, kind: "answer", step: ++watched.step })
        // One ping is in flight at a time: the next is scheduled only once this one is answered.
        session.ping().then(
          () => {
            const answeredAt = monotonicMillis(this.clock as Clock.Clock)
            this.schedule({ at: answeredAt + this.interval, watched, kind: "ping", step: ++watched.step })
          },
          // Rejected only when the session closes, which is then no longer watched.
          () => {},
        )
        return false
    }
  }
}
