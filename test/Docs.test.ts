import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { referenceRows } from "../src/PicoConfig/Reference.js"
import { agentSettings, serverSettings } from "../src/PicoConfig.js"

const configurationDoc = readFileSync(new URL("../docs/configuration.md", import.meta.url), "utf8")

/** The rows of the first table under a heading. */
const tableUnder = (heading: string): Array<string> => {
  const lines = (configurationDoc.split(`${heading}\n`)[1] ?? "").split("\n")
  const start = lines.findIndex((line) => line.startsWith("| `--"))
  const end = lines.findIndex((line, index) => index > start && !line.startsWith("| `--"))
  return lines.slice(start, end)
}

describe("docs/configuration.md", () => {
  it("lists every server and agent flag with its key, default and help, as the settings table has them", () => {
    // `npm run docs:config` rewrites the tables from the code.
    expect(tableUnder("### `pico server`")).toEqual(referenceRows(serverSettings))
    expect(tableUnder("### `pico agent`")).toEqual(referenceRows(agentSettings))
  })
})
