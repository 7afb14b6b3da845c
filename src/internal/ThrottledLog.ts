import { Effect, FiberSet, type Scope } from "effect"

/** How often a throttled line may be written; the events in between are counted into the next one. */
const LOG_INTERVAL_MS = 10_000

/**
 * Counts events by kind and writes them as one line at most once per interval: the first event after a quiet
 * interval is logged at once, the ones after it are summed into the line at the interval's end. A flood from the
 * network costs a line per interval. Counts still unwritten when the scope closes are written then.
 */
export const make = <Kind extends string>(
  kinds: ReadonlyArray<Kind>,
  line: (counts: Readonly<Record<Kind, number>>) => Effect.Effect<void>,
  intervalMs = LOG_INTERVAL_MS,
): Effect.Effect<(kind: Kind) => void, never, Scope.Scope> =>
  Effect.gen(function* () {
    const run = yield* FiberSet.makeRuntime<never>()
    const zero = () => Object.fromEntries(kinds.map((kind) => [kind, 0])) as Record<Kind, number>
    let unlogged = zero()
    let pending = false
    let timer: NodeJS.Timeout | undefined
    let closed = false
    /** The counts so far, if there are any, and a fresh tally. */
    const take = (): Record<Kind, number> | undefined => {
      if (!pending) return undefined
      const counts = unlogged
      unlogged = zero()
      pending = false
      return counts
    }
    // A line written opens an interval; an interval that ends with nothing to write lets the next event go at once.
    const write = () => {
      const counts = take()
      if (counts === undefined) {
        timer = undefined
        return
      }
      run(line(counts))
      timer = setTimeout(write, intervalMs).unref()
    }
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        closed = true
        clearTimeout(timer)
        const counts = take()
        return counts === undefined ? Effect.void : line(counts)
      }),
    )
    return (kind: Kind) => {
      if (closed) return
      unlogged[kind]++
      pending = true
      if (timer === undefined) write()
    }
  })
