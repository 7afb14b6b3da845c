import { type MetricLabel, type MetricPair, MetricState } from "effect"
import { type Family, instanceLabelKey } from "../Metrics.js"
import type { Labels, Sample } from "./Exposition.js"

/** The node instance a set of fiber labels belongs to (undefined outside any node). */
export const instanceOf = (labels: ReadonlyArray<MetricLabel.MetricLabel>): string | undefined =>
  labels.find((label) => label.key === instanceLabelKey)?.value

const toSample = (labels: Labels, state: MetricState.MetricState.Untyped): Sample | undefined => {
  if (MetricState.isCounterState(state)) return { labels, value: Number(state.count) }
  if (MetricState.isGaugeState(state)) return { labels, value: Number(state.value) }
  if (MetricState.isHistogramState(state))
    return { labels, buckets: state.buckets, sum: state.sum, count: state.count }
  return undefined
}

const sortKey = (labels: Labels): string => labels.map(([name, value]) => `${name}=${value}`).join("\u0000")

/**
 * The series of `families` that belong to `instance` (those without an instance label when it is undefined),
 * without the instance label, sorted by labels so the page reads the same on every scrape.
 */
export const samplesFromSnapshot = (
  pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>,
  families: ReadonlyArray<Family>,
  instance: string | undefined,
): Map<string, ReadonlyArray<Sample>> => {
  const wanted = new Set(families.map((family) => family.name))
  const byName = new Map<string, Array<Sample>>()
  for (const { metricKey, metricState } of pairs) {
    if (!wanted.has(metricKey.name) || instanceOf(metricKey.tags) !== instance) continue
    const labels: Labels = metricKey.tags
      .filter((label) => label.key !== instanceLabelKey)
      .map((label) => [label.key, label.value] as const)
    const sample = toSample(labels, metricState)
    if (sample === undefined) continue
    const samples = byName.get(metricKey.name) ?? []
    samples.push(sample)
    byName.set(metricKey.name, samples)
  }
  for (const samples of byName.values())
    samples.sort((a, b) => (sortKey(a.labels) < sortKey(b.labels) ? -1 : 1))
  return byName
}
