import type { Family } from "../Metrics.js"

/** Label names and values of one series, in the order they are printed. */
export type Labels = ReadonlyArray<readonly [name: string, value: string]>

export interface ValueSample {
  readonly labels: Labels
  readonly value: number
}

export interface HistogramSample {
  readonly labels: Labels
  /** Cumulative counts by upper bound, ascending; the last bound is Infinity. */
  readonly buckets: ReadonlyArray<readonly [bound: number, count: number]>
  readonly sum: number
  readonly count: number
}

export type Sample = ValueSample | HistogramSample

/** The samples of each family, by family name. */
export type Samples = ReadonlyMap<string, ReadonlyArray<Sample>>

export const contentType = "text/plain; version=0.0.4; charset=utf-8"

const formatNumber = (value: number): string =>
  Number.isNaN(value) ? "NaN" : value === Infinity ? "+Inf" : value === -Infinity ? "-Inf" : String(value)

const escapeHelp = (text: string): string => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

const escapeLabelValue = (text: string): string =>
  text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")

const formatLabels = (labels: Labels): string =>
  labels.length === 0
    ? ""
    : `{${labels.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(",")}}`

const sampleLines = (name: string, sample: Sample): Array<string> => {
  if ("value" in sample) return [`${name}${formatLabels(sample.labels)} ${formatNumber(sample.value)}`]
  const lines = sample.buckets.map(
    ([bound, count]) =>
      `${name}_bucket${formatLabels([...sample.labels, ["le", formatNumber(bound)]])} ${count}`,
  )
  const labels = formatLabels(sample.labels)
  lines.push(`${name}_sum${labels} ${formatNumber(sample.sum)}`, `${name}_count${labels} ${sample.count}`)
  return lines
}

/**
 * The Prometheus text exposition format (0.0.4): each family's HELP and TYPE lines, then its samples. A family
 * with no samples yet (a labelled counter nothing has incremented) still shows its HELP and TYPE.
 */
export const render = (families: ReadonlyArray<Family>, samples: Samples): string => {
  const lines: Array<string> = []
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`)
    for (const sample of samples.get(family.name) ?? []) lines.push(...sampleLines(family.name, sample))
  }
  return `${lines.join("\n")}\n`
}
