import { execFileSync } from "node:child_process"

/**
 * Prometheus's own parser and linter is the authority on a /metrics page (`checkWithPromtool`); `readMetrics`
 * only reads values back for assertions, and is strict so that it cannot paper over a malformed page.
 */

export interface ScrapedFamily {
  readonly help: string
  readonly type: string
  /** Sample lines, histogram `_bucket`/`_sum`/`_count` lines included. */
  readonly samples: Array<{
    readonly name: string
    readonly labels: Record<string, string>
    readonly value: number
  }>
}

const unescape = (text: string): string =>
  text.replace(/\\(.)/g, (_match, char: string) => (char === "n" ? "\n" : char))

const labelPattern = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y

const parseLabels = (text: string, line: string): Record<string, string> => {
  const labels: Record<string, string> = {}
  labelPattern.lastIndex = 0
  while (labelPattern.lastIndex < text.length) {
    const match = labelPattern.exec(text)
    if (match === null) throw new Error(`bad labels in: ${line}`)
    labels[match[1] as string] = unescape(match[2] as string)
  }
  return labels
}

const samplePattern = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/

/** Reads a text-format page into families by name; throws on any line it cannot read. */
export const readMetrics = (text: string): ReadonlyMap<string, ScrapedFamily> => {
  const families = new Map<string, ScrapedFamily>()
  const familyOf = (sample: string) =>
    families.get(sample) ?? families.get(sample.replace(/_(bucket|sum|count)$/, ""))
  for (const line of text.split("\n")) {
    if (line === "") continue
    const help = /^# HELP (\S+) (.*)$/.exec(line)
    if (help !== null) {
      families.set(help[1] as string, { help: unescape(help[2] as string), type: "untyped", samples: [] })
      continue
    }
    const type = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line)
    if (type !== null) {
      const family = families.get(type[1] as string)
      if (family === undefined) throw new Error(`TYPE before HELP: ${line}`)
      families.set(type[1] as string, { ...family, type: type[2] as string })
      continue
    }
    const sample = samplePattern.exec(line)
    if (sample === null) throw new Error(`unreadable line: ${line}`)
    const family = familyOf(sample[1] as string)
    if (family === undefined) throw new Error(`sample without HELP and TYPE: ${line}`)
    const value = Number((sample[3] as string).replace("+Inf", "Infinity"))
    if (Number.isNaN(value) && sample[3] !== "NaN") throw new Error(`bad value: ${line}`)
    family.samples.push({ name: sample[1] as string, labels: parseLabels(sample[2] ?? "", line), value })
  }
  return families
}

/** The value of the sample with exactly this name and these labels, or undefined. */
export const valueOf = (
  families: ReadonlyMap<string, ScrapedFamily>,
  sample: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined => {
  const family = families.get(sample) ?? families.get(sample.replace(/_(bucket|sum|count)$/, ""))
  const wanted = JSON.stringify(Object.entries(labels).sort())
  return family?.samples.find(
    (candidate) =>
      candidate.name === sample && JSON.stringify(Object.entries(candidate.labels).sort()) === wanted,
  )?.value
}

/**
 * `promtool check metrics`: Prometheus's parser and its naming linter. Returns what it reports ("" for a clean
 * page). CI installs it with the Debian package `prometheus`.
 */
export const checkWithPromtool = (text: string): string => {
  try {
    return execFileSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8", stdio: "pipe" })
  } catch (error) {
    const { code, stdout, stderr } = error as { code?: string; stdout?: string; stderr?: string }
    if (code === "ENOENT") throw new Error("promtool not found: install it (Debian package prometheus)")
    return `${stdout ?? ""}${stderr ?? ""}`
  }
}
