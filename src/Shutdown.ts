import { Context, Deferred, Duration, Effect, Layer } from "effect"

/**
 * Coordinates a graceful drain. Listeners register what "stop taking new work" means for them; request handlers
 * count themselves in and out; `drain` runs the hooks and then waits for in-flight work, up to a deadline.
 */
export class Shutdown extends Context.Tag("pico/Shutdown")<
  Shutdown,
  {
    /** True once draining has begun: /ready answers 503 and responses ask clients not to keep connections. */
    readonly isDraining: () => boolean
    readonly onDrain: (hook: Effect.Effect<void>) => Effect.Effect<void>
    /** Marks one unit of in-flight work (a proxied request) as started; the returned function ends it. */
    readonly begin: () => () => void
    /** Runs the drain hooks, then waits until no work is in flight or `timeout` milliseconds pass. */
    readonly drain: (timeout: number) => Effect.Effect<{ readonly abandoned: number }>
  }
>() {}

export const make = Effect.sync(() => {
  let draining = false
  let inFlight = 0
  const hooks: Array<Effect.Effect<void>> = []
  let idle: Deferred.Deferred<void> | undefined

  const end = () => {
    inFlight--
    if (inFlight === 0 && idle !== undefined) Deferred.unsafeDone(idle, Effect.void)
  }

  return Shutdown.of({
    isDraining: () => draining,
    onDrain: (hook) => Effect.sync(() => void hooks.push(hook)),
    begin: () => {
      inFlight++
      let ended = false
      return () => {
        if (ended) return
        ended = true
        end()
      }
    },
    drain: (timeout) =>
      Effect.gen(function* () {
        if (draining) return { abandoned: 0 }
        draining = true
        for (const hook of hooks) yield* hook
        if (inFlight === 0) return { abandoned: 0 }
        idle = yield* Deferred.make<void>()
        yield* Effect.logInfo("waiting for in-flight requests").pipe(
          Effect.annotateLogs("in_flight", inFlight),
        )
        yield* Deferred.await(idle).pipe(Effect.timeout(Duration.millis(timeout)), Effect.ignore)
        return { abandoned: inFlight }
      }).pipe(Effect.annotateLogs("subsystem", "server")),
  })
})

export const layer: Layer.Layer<Shutdown> = Layer.effect(Shutdown, make)
