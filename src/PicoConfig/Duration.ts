/**
 * Go-style durations ("15s", "500ms", "1m30s", "1.5h"): the syntax Pico's flags and YAML files use.
 * Effect's own `Config.duration` wants "15 seconds", which would break every documented example.
 */
const unitMillis: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
}

const component = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y

/** Parses a Go duration into milliseconds, or returns undefined when the text is not one. */
export const parseGoDuration = (text: string): number | undefined => {
  const trimmed = text.trim()
  if (trimmed === "0") return 0
  if (trimmed === "") return undefined
  let total = 0
  component.lastIndex = 0
  while (component.lastIndex < trimmed.length) {
    const start = component.lastIndex
    const match = component.exec(trimmed)
    if (match === null || match.index !== start) return undefined
    total += Number(match[1]) * (unitMillis[match[2] as string] as number)
  }
  return total
}

/** Formats milliseconds the way Go prints durations, for help text and logs ("15s", "1m0s" → "1m"). */
export const formatGoDuration = (millis: number): string => {
  if (millis === 0) return "0s"
  if (millis < 1000) return `${millis}ms`
  const hours = Math.floor(millis / 3_600_000)
  const minutes = Math.floor((millis % 3_600_000) / 60_000)
  const seconds = (millis % 60_000) / 1000
  return `${hours > 0 ? `${hours}h` : ""}${minutes > 0 ? `${minutes}m` : ""}${seconds > 0 ? `${seconds}s` : ""}`
}
