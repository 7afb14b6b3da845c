import { Context, Effect, Layer } from "effect"

/**
 * A node's drain state, shared by the listeners: whether the node is draining (readiness off, clients asked to
 * reconnect elsewhere) and how many proxied requests are in flight. `Drain` runs the drain itself.
 */
export class Shutdown extends Context.Tag("pico/Shutdown")<
  Shutdown,
  {
    /** True once draining has begun: /ready answers 503 and responses ask clients not to keep connections. */
    readonly isDraining: () => boolean
    readonly startDraining: Effect.Effect<void>
    /** Marks one unit of in-flight work (a proxied request) as started; the returned function ends it. */
    readonly begin: () => () => void
    readonly inFlight: () => number
    /** Completes once no request is in flight (at once if none is). */
    readonly awaitIdle: Effect.Effect<void>
  }
>() {}

export const make = Effect.sync(() => {
  let draining = false
  let inFlight = 0
  // Open while nothing is in flight.
  const idle = Effect.unsafeMakeLatch(true)

  return Shutdown.of({
    isDraining: () => draining,
    startDraining: Effect.sync(() => {
      draining = true
    }),
    begin: () => {
      if (inFlight++ === 0) idle.unsafeClose()
      let ended = false
      return () => {
        if (ended) return
        ended = true
        if (--inFlight === 0) idle.unsafeOpen()
      }
    },
    inFlight: () => inFlight,
    awaitIdle: idle.await,
  })
})

export const layer: Layer.Layer<Shutdown> = Layer.effect(Shutdown, make)
