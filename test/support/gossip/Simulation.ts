/**
 * Discrete-event simulated time for in-process clusters. `run` executes an effect on a scheduler of its own and a
 * virtual clock: whenever no fiber has work left, the clock jumps to the next timer. So a hundred nodes gossiping
 * for a simulated minute take as long as the work they do, and a run is deterministic for a given seed.
 *
 * TestClock does the same job for small tests, but before each wake-up it polls with real timers until every fiber
 * is suspended (a few ms each): far too slow for thousands of rounds.
 */
import { Clock, Duration, Effect, Fiber, Random, Scheduler } from "effect"

interface Timer {
  readonly at: number
  readonly wake: () => void
}

class VirtualClock implements Clock.Clock {
  readonly [Clock.ClockTypeId]: Clock.ClockTypeId = Clock.ClockTypeId
  now = 0
  // Sorted by time; timers due at the same instant fire in the order they were set.
  private timers: Array<Timer> = []

  unsafeCurrentTimeMillis(): number {
    return this.now
  }
  readonly currentTimeMillis = Effect.sync(() => this.now)
  unsafeCurrentTimeNanos(): bigint {
    return BigInt(Math.round(this.now * 1_000_000))
  }
  readonly currentTimeNanos = Effect.sync(() => this.unsafeCurrentTimeNanos())

  sleep(duration: Duration.Duration): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      const timer = { at: this.now + Duration.toMillis(duration), wake: () => resume(Effect.void) }
      let index = this.timers.length
      while (index > 0 && (this.timers[index - 1] as Timer).at > timer.at) index--
      this.timers.splice(index, 0, timer)
      return Effect.sync(() => {
        this.timers = this.timers.filter((other) => other !== timer)
      })
    })
  }

  /** Fires the earliest timer, moving the clock to it; false when none is left. */
  fireNext(): boolean {
    const timer = this.timers.shift()
    if (timer === undefined) return false
    this.now = Math.max(this.now, timer.at)
    timer.wake()
    return true
  }
}

/** Fibers that keep each other busy this long without time passing are stuck in a loop (a message storm). */
const TASKS_PER_INSTANT = 2_000_000

/** Runs tasks only when told to, so the driver knows when every fiber is idle. */
class SteppedScheduler implements Scheduler.Scheduler {
  private tasks: Array<Scheduler.Task> = []
  readonly shouldYield = Scheduler.defaultShouldYield

  scheduleTask(task: Scheduler.Task): void {
    this.tasks.push(task)
  }

  /** Runs tasks, including the ones they schedule, until none is left; false if they never stop. */
  drain(): boolean {
    let budget = TASKS_PER_INSTANT
    while (this.tasks.length > 0) {
      const batch = this.tasks
      this.tasks = []
      for (const task of batch) task()
      budget -= batch.length
      if (budget < 0) return false
    }
    return true
  }
}

export interface RunOptions {
  /** Seeds the Random service of everything in the simulation. Default 1. */
  readonly seed?: number
  /** The simulation dies if the effect has not completed by this simulated time. Default 1 hour. */
  readonly limit?: Duration.DurationInput
}

/**
 * Runs the effect to completion in simulated time (starting at 0). Everything it forks stays in the simulation;
 * the effect must not wait on anything outside it (real I/O, real timers), or the simulation stalls and dies.
 */
export const run = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options: RunOptions = {},
): Effect.Effect<A, E, R> =>
  Effect.gen(function* () {
    const clock = new VirtualClock()
    const scheduler = new SteppedScheduler()
    const limit = Duration.toMillis(options.limit ?? "1 hour")
    // Set around the fork only: the child and everything it forks inherit them, the caller keeps its own.
    const fiber = yield* Effect.fork(effect).pipe(
      Effect.withClock(clock),
      Effect.withRandom(Random.make(options.seed ?? 1)),
      Effect.withScheduler(scheduler),
    )
    const outcome = yield* Effect.sync(() => {
      if (!scheduler.drain()) return "livelocked"
      while (fiber.unsafePoll() === null) {
        if (clock.now > limit) return "past its time limit"
        if (!clock.fireNext()) return "stalled"
        if (!scheduler.drain()) return "livelocked"
      }
      return "done"
    })
    if (outcome !== "done") {
      fiber.unsafeInterruptAsFork(fiber.id())
      scheduler.drain()
      return yield* Effect.dieMessage(`simulation ${outcome} at ${clock.now} ms`)
    }
    return yield* Fiber.join(fiber)
  })

/** Sleeps in steps until the condition holds; the simulated ms it took, or a defect after `within`. */
export const waitFor = (
  condition: Effect.Effect<boolean>,
  within: Duration.DurationInput,
  step: Duration.DurationInput = "10 millis",
): Effect.Effect<number> =>
  Effect.gen(function* () {
    const start = yield* Clock.currentTimeMillis
    const deadline = start + Duration.toMillis(within)
    while (!(yield* condition)) {
      if ((yield* Clock.currentTimeMillis) >= deadline)
        return yield* Effect.dieMessage(`condition not met within ${Duration.format(within)}`)
      yield* Effect.sleep(step)
    }
    return (yield* Clock.currentTimeMillis) - start
  })
