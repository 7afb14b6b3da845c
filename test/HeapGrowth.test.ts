import { describe, expect, it } from "vitest"
import { HEAP_GROWING_FLAG, setHeapGrowth } from "../src/internal/HeapGrowth.js"

describe("the heap growing factor the pico bin sets", () => {
  const run = (execArgv: ReadonlyArray<string>) => {
    const set: Array<string> = []
    const changed = setHeapGrowth(execArgv, (flags) => set.push(flags))
    return { changed, set }
  }

  it("is 200%, unless node's command line chose one", () => {
    expect(HEAP_GROWING_FLAG).toBe("--heap-growing-percent=200")
    expect(run([])).toEqual({ changed: true, set: [HEAP_GROWING_FLAG] })
    expect(run(["--enable-source-maps"])).toEqual({ changed: true, set: [HEAP_GROWING_FLAG] })
    expect(run(["--heap-growing-percent=50"])).toEqual({ changed: false, set: [] })
    expect(run(["--trace-gc", "--heap-growing-percent=50"])).toEqual({ changed: false, set: [] })
    expect(run(["--heap_growing_percent=50"])).toEqual({ changed: false, set: [] })
  })
})
