import { Effect, FiberSet, type Scope } from "effect"

/** How often a throttled line may be written; the events in between are counted into the next one. */
const LOG_INTERVAL_MS = 10_000

/**
 * Counts events by kind and writes them as one line at most every ten seconds: the first event is logged at
 * once, the ones after it are summed into the next line. A flood from the network costs a line per interval.
 */
export const make = <Kind extends string>(
  kinds: ReadonlyArray<Kind>,
  line: (counts: Readonly<Record<Kind, number>>) => Effect.Effect<void>,
): Effect.Effect<(kind: Kind) => void, never, Scope.Scope> =>
  Effect.gen(function* () {
    const run = yield* FiberSet.makeRuntime<never>()
    const zero = () => Object.fromEntries(kinds.map((kind) => [kind, 0])) as Record<Kind, number>
    let unlogged = zero()
    let timer: NodeJS.Timeout | undefined
    const flush = () => {
      timer = undefined
      const counts = unlogged
      unlogged = zero()
      if (Object.values<number>(counts).some((count) => count > 0)) run(line(counts))
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => clearTimeout(timer)))
    return (kind: Kind) => {
      unlogged[kind]++
      if (timer !== undefined) return
      flush()
      timer = setTimeout(flush, LOG_INTERVAL_MS).unref()
    }
  })
