import { Effect, Exit, Scope } from "effect"
import { describe, expect, it } from "vitest"
import * as ThrottledLog from "../src/internal/ThrottledLog.js"
import { waitFor } from "./support/http.js"

const INTERVAL_MS = 100

/** A throttled log whose lines (with the time each was written) land in `lines`. */
const start = async () => {
  const lines: Array<{ readonly counts: Record<string, number>; readonly at: number }> = []
  const scope = await Effect.runPromise(Scope.make())
  const note = await Effect.runPromise(
    ThrottledLog.make(
      ["a", "b"],
      (counts) => Effect.sync(() => lines.push({ counts: { ...counts }, at: performance.now() })),
      INTERVAL_MS,
    ).pipe(Scope.extend(scope)),
  )
  return { lines, note, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

describe("a throttled log line", () => {
  it("writes the first event at once and sums the others into one line per interval", async () => {
    const { lines, note, close } = await start()
    note("a")
    note("a")
    note("b")
    expect(lines.map((line) => line.counts)).toEqual([{ a: 1, b: 0 }])
    await waitFor("the interval's line", () => lines.length === 2)
    expect(lines[1]?.counts).toEqual({ a: 1, b: 1 })
    // A line opens an interval of its own: the next event waits for its end too.
    note("b")
    expect(lines).toHaveLength(2)
    await waitFor("the next interval's line", () => lines.length === 3)
    expect(lines[2]?.counts).toEqual({ a: 0, b: 1 })
    const gaps = [1, 2].map((i) => (lines[i]?.at ?? 0) - (lines[i - 1]?.at ?? 0))
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(INTERVAL_MS - 5)
    await close()
  })

  it("writes no line for an interval without events, and goes back to writing the next event at once", async () => {
    const { lines, note, close } = await start()
    note("a")
    // Absence is what is under test: wait out the interval that line opened, and the quiet one after it.
    await new Promise((resolve) => setTimeout(resolve, 3 * INTERVAL_MS))
    expect(lines).toHaveLength(1)
    note("b")
    expect(lines.map((line) => line.counts)).toEqual([
      { a: 1, b: 0 },
      { a: 0, b: 1 },
    ])
    await close()
  })

  it("writes nothing when its scope closes with nothing held", async () => {
    const { lines, close } = await start()
    await close()
    expect(lines).toEqual([])
  })

  it("writes what it still holds when its scope closes, and nothing after", async () => {
    const { lines, note, close } = await start()
    note("a")
    note("b")
    note("b")
    await close()
    expect(lines.map((line) => line.counts)).toEqual([
      { a: 1, b: 0 },
      { a: 0, b: 2 },
    ])
    // An event after the close would arm a timer no one clears: none comes, however long one waits.
    note("a")
    await new Promise((resolve) => setTimeout(resolve, 2 * INTERVAL_MS))
    expect(lines).toHaveLength(2)
  })
})
