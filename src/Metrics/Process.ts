import { readdir, readFile } from "node:fs/promises"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { Effect, type Scope } from "effect"
import * as Metrics from "../Metrics.js"
import type { Sample, Samples } from "./Exposition.js"

/** Linux's view of the process's file descriptors; undefined elsewhere (no /proc). */
const fileDescriptors = async (): Promise<{ open: number; max: number } | undefined> => {
  try {
    // readdir itself holds one descriptor open on the directory.
    const open = (await readdir("/proc/self/fd")).length - 1
    const limits = await readFile("/proc/self/limits", "utf8")
    const max = Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1] ?? Number.NaN)
    return { open, max }
  } catch {
    return undefined
  }
}

/** How often the event loop delay is sampled, in milliseconds. */
const DELAY_RESOLUTION = 10

const single = (family: Metrics.Family, value: number): [string, ReadonlyArray<Sample>] => [
  family.name,
  [{ labels: [], value }],
]

/**
 * The standard process metrics Prometheus users expect, read at each scrape. The event loop delay is sampled
 * for as long as the scope lives and reset at every scrape, so it describes the time since the previous one.
 */
export const makeProcessSamples: Effect.Effect<Effect.Effect<Samples>, never, Scope.Scope> = Effect.gen(
  function* () {
    const delay = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const histogram = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION })
        histogram.enable()
        return histogram
      }),
      (histogram) => Effect.sync(() => histogram.disable()),
    )
    const startTime = (Date.now() - process.uptime() * 1000) / 1000
    return Effect.promise(async () => {
      const cpu = process.cpuUsage()
      const memory = process.memoryUsage()
      const fds = await fileDescriptors()
      // The histogram holds the intervals between samples, in nanoseconds (and extremes before its first one);
      // the delay is what exceeds the sampling interval.
      const lag = (nanos: number) =>
        delay.count === 0 ? 0 : Math.max(0, nanos / 1e9 - DELAY_RESOLUTION / 1000)
      const samples = new Map([
        single(Metrics.processCpuUser, cpu.user / 1e6),
        single(Metrics.processCpuSystem, cpu.system / 1e6),
        single(Metrics.processCpu, (cpu.user + cpu.system) / 1e6),
        single(Metrics.processStartTime, startTime),
        single(Metrics.processResidentMemory, memory.rss),
        single(Metrics.nodejsHeapUsed, memory.heapUsed),
        single(Metrics.nodejsHeapTotal, memory.heapTotal),
        single(Metrics.nodejsExternalMemory, memory.external),
        single(Metrics.nodejsEventLoopLagP99, lag(delay.percentile(99))),
        single(Metrics.nodejsEventLoopLagMax, lag(delay.max)),
      ])
      if (fds !== undefined) {
        samples.set(...single(Metrics.processOpenFds, fds.open))
        // "unlimited" has no number to show.
        if (Number.isFinite(fds.max)) samples.set(...single(Metrics.processMaxFds, fds.max))
      }
      delay.reset()
      return samples
    })
  },
)
