import { appendFileSync } from "node:fs"
import { type RequestRecord, type Tally, tally } from "./load.js"

/**
 * What a scenario measured: requests sent and lost (overall and per phase), named timings, and every lost
 * request with its status and error. `report` prints them, and appends them to $PICO_CHAOS_REPORT when set
 * (`npm run bench` prints that file as its chaos table).
 */

export interface Phase {
  readonly name: string
  readonly from: number
  readonly to: number
}

export interface Figures extends Tally {
  readonly scenario: string
  readonly durationMs: number
  readonly phases: ReadonlyArray<Tally & { readonly name: string; readonly durationMs: number }>
  /** Milliseconds, by what they measure. */
  readonly timings: Readonly<Record<string, number>>
  /** The lost requests by kind: how many, when (from the scenario's start), in which phase, and how they failed. */
  readonly lostRequests: ReadonlyArray<string>
  /** The warnings the nodes and agents logged meanwhile: where a lost request's error came from. */
  readonly logged: ReadonlyArray<string>
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`

/**
 * The lost requests, one line per kind (method, phase, status and body or error): how many, from when to when
 * (from `started`), and the longest any of them took.
 */
export const lostLines = (
  records: ReadonlyArray<RequestRecord>,
  started: number,
  phases: ReadonlyArray<Phase>,
): Array<string> => {
  const phaseOf = (at: number) => phases.find((phase) => at >= phase.from && at < phase.to)?.name ?? "-"
  const kinds = new Map<string, Array<RequestRecord>>()
  for (const record of records) {
    if (record.failure === undefined) continue
    const kind = `${record.method} during ${phaseOf(record.start)}: ${record.failure}`
    kinds.set(kind, [...(kinds.get(kind) ?? []), record])
  }
  return [...kinds].map(([kind, lost]) => {
    const starts = lost.map((record) => record.start - started)
    const took = Math.max(...lost.map((record) => record.end - record.start))
    const when =
      lost.length === 1
        ? `1 at +${seconds(starts[0] as number)}`
        : `${lost.length} from +${seconds(Math.min(...starts))} to +${seconds(Math.max(...starts))}`
    return `${when} (took up to ${seconds(took)}) ${kind}`
  })
}

export interface Measured {
  readonly scenario: string
  readonly records: ReadonlyArray<RequestRecord>
  readonly started: number
  readonly phases: ReadonlyArray<Phase>
  readonly timings: Record<string, number>
  readonly logged: ReadonlyArray<string>
}

export const figures = ({ scenario, records, started, phases, timings, logged }: Measured): Figures => ({
  scenario,
  ...tally(records),
  durationMs: Math.max(...records.map((record) => record.end)) - started,
  phases: phases.map((phase) => ({
    name: phase.name,
    durationMs: phase.to - phase.from,
    ...tally(records, phase.from, phase.to),
  })),
  timings,
  lostRequests: lostLines(records, started, phases),
  logged,
})

export const format = (result: Figures): string => {
  const lines = [
    `${result.scenario}: ${result.sent} requests sent, ${result.lost} lost, in ${seconds(result.durationMs)}`,
    ...result.phases.map(
      (phase) =>
        `  ${phase.name.padEnd(32)} ${String(phase.sent).padStart(6)} sent ${String(phase.lost).padStart(5)} lost` +
        `  (${seconds(phase.durationMs)})`,
    ),
    ...Object.entries(result.timings).map(([name, ms]) => `  ${name.padEnd(52)} ${seconds(ms).padStart(9)}`),
    ...result.lostRequests.map((line) => `  lost ${line}`),
    ...result.logged.map((line) => `  logged ${line}`),
  ]
  return `${lines.join("\n")}\n`
}

export const report = (result: Figures): void => {
  const text = format(result)
  console.log(text)
  const file = process.env.PICO_CHAOS_REPORT
  if (file !== undefined && file !== "") appendFileSync(file, `${text}\n`)
}
