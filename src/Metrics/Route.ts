import { Effect, Metric, type Scope } from "effect"
import type { Handler } from "../internal/Router.js"
import * as Metrics from "../Metrics.js"
import { contentType, render, type Samples } from "./Exposition.js"
import { makeProcessSamples } from "./Process.js"
import { instanceOf, samplesFromSnapshot } from "./Snapshot.js"

/**
 * Makes a /metrics route: the Effect metrics of `families` that belong to the current fiber's instance (see
 * Metrics.isolate), the samples `sources` read at scrape time, and the process metrics.
 */
export const makeMetricsRoute = (
  families: ReadonlyArray<Metrics.Family>,
  sources: ReadonlyArray<Effect.Effect<Samples>> = [],
): Effect.Effect<Handler, never, Scope.Scope> =>
  Effect.gen(function* () {
    const instance = instanceOf(yield* Metrics.currentLabels)
    const processSamples = yield* makeProcessSamples
    const shown = [...families, ...Metrics.processFamilies]
    return () =>
      Effect.gen(function* () {
        const samples = samplesFromSnapshot(yield* Metric.snapshot, families, instance)
        for (const source of [...sources, processSamples])
          for (const [name, series] of yield* source) samples.set(name, series)
        return { status: 200, body: Buffer.from(render(shown, samples)), contentType }
      })
  })
