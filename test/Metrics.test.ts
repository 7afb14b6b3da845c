import { Effect, Layer, Metric } from "effect"
import { describe, expect, it } from "vitest"
import { render, type Samples } from "../src/Metrics/Exposition.js"
import { samplesFromSnapshot } from "../src/Metrics/Snapshot.js"
import * as Metrics from "../src/Metrics.js"
import { checkWithPromtool, readMetrics, valueOf } from "./support/prometheus.js"

const families: ReadonlyArray<Metrics.Family> = [
  { name: "demo_requests_total", help: 'Requests, by "path".\nSecond line \\ backslash.', type: "counter" },
  { name: "demo_queue_depth", help: "Queued items.", type: "gauge" },
  { name: "demo_wait_seconds", help: "Time waited.", type: "histogram" },
  { name: "demo_unused_total", help: "Never incremented.", type: "counter" },
]

const samples: Samples = new Map([
  ["demo_requests_total", [{ labels: [["path", 'a "quoted"\\path\nline']] as const, value: 3 }]],
  ["demo_queue_depth", [{ labels: [], value: 0.5 }]],
  [
    "demo_wait_seconds",
    [
      {
        labels: [["queue", "q1"]] as const,
        buckets: [
          [0.1, 1],
          [1, 3],
          [Infinity, 4],
        ] as const,
        sum: 7.25,
        count: 4,
      },
    ],
  ],
])

describe("Prometheus exposition", () => {
  it("writes HELP, TYPE and samples, escaping help text and label values", () => {
    expect(render(families, samples)).toBe(
      [
        '# HELP demo_requests_total Requests, by "path".\\nSecond line \\\\ backslash.',
        "# TYPE demo_requests_total counter",
        'demo_requests_total{path="a \\"quoted\\"\\\\path\\nline"} 3',
        "# HELP demo_queue_depth Queued items.",
        "# TYPE demo_queue_depth gauge",
        "demo_queue_depth 0.5",
        "# HELP demo_wait_seconds Time waited.",
        "# TYPE demo_wait_seconds histogram",
        'demo_wait_seconds_bucket{queue="q1",le="0.1"} 1',
        'demo_wait_seconds_bucket{queue="q1",le="1"} 3',
        'demo_wait_seconds_bucket{queue="q1",le="+Inf"} 4',
        'demo_wait_seconds_sum{queue="q1"} 7.25',
        'demo_wait_seconds_count{queue="q1"} 4',
        "# HELP demo_unused_total Never incremented.",
        "# TYPE demo_unused_total counter",
        "",
      ].join("\n"),
    )
  })

  it("passes promtool, and reads back the values and label text it was given", () => {
    const text = render(families, samples)
    const parsed = readMetrics(text)
    expect(valueOf(parsed, "demo_requests_total", { path: 'a "quoted"\\path\nline' })).toBe(3)
    expect(valueOf(parsed, "demo_wait_seconds_bucket", { queue: "q1", le: "+Inf" })).toBe(4)
    expect(parsed.get("demo_requests_total")?.help).toBe('Requests, by "path".\nSecond line \\ backslash.')
    expect(checkWithPromtool(text)).toBe("")
  })
})

describe("metrics of several nodes in one process", () => {
  const counter = Metric.counter("pico_test_isolation_total", { incremental: true })
  const testFamilies: ReadonlyArray<Metrics.Family> = [
    { name: "pico_test_isolation_total", help: "", type: "counter" },
  ]
  it("keeps each node's series apart, and shows them without the instance label", async () => {
    const instances: Array<string | undefined> = []
    const capture = Layer.effectDiscard(
      Effect.map(Metrics.currentLabels, (labels) => {
        instances.push(labels.find((label) => label.key === Metrics.instanceLabelKey)?.value)
      }),
    )
    // Two nodes, as serverLayer builds them: each counts in its own fibers.
    for (const times of [2, 5]) {
      await Effect.runPromise(
        Effect.scoped(
          Layer.build(
            Layer.mergeAll(
              capture,
              Layer.effectDiscard(Effect.repeatN(Metric.increment(counter), times - 1)),
            ).pipe(Metrics.isolate),
          ),
        ),
      )
    }
    await Effect.runPromise(Metric.increment(counter))
    const snapshot = await Effect.runPromise(Metric.snapshot)
    const valuesOf = (instance: string | undefined) =>
      samplesFromSnapshot(snapshot, testFamilies, instance).get("pico_test_isolation_total")
    expect(instances).toHaveLength(2)
    expect(valuesOf(instances[0])).toEqual([{ labels: [], value: 2 }])
    expect(valuesOf(instances[1])).toEqual([{ labels: [], value: 5 }])
    expect(valuesOf(undefined)).toEqual([{ labels: [], value: 1 }])
  })
})

describe("the metrics module", () => {
  it("declares Prometheus-style names, each once", () => {
    const all = [...Metrics.serverFamilies, ...Metrics.agentFamilies, ...Metrics.processFamilies]
    expect(new Set(all.map((family) => family.name)).size).toBe(all.length)
    for (const family of all) {
      expect(family.name).toMatch(/^[a-z_][a-z0-9_]*$/)
      expect(family.name.endsWith("_total")).toBe(family.type === "counter")
      expect(family.help).not.toBe("")
    }
  })
})
