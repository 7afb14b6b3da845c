import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { devClusterSettings } from "../src/PicoConfig/DevCluster.js"
import { referenceRows } from "../src/PicoConfig/Reference.js"
import { entries, flagName } from "../src/PicoConfig/Resolve.js"
import type { SettingsTree } from "../src/PicoConfig/Setting.js"
import { statusSettings } from "../src/PicoConfig/Status.js"
import { agentSettings, forwardTcpSettings, serverSettings } from "../src/PicoConfig.js"

const read = (path: string) => readFileSync(new URL(`../docs/${path}`, import.meta.url), "utf8")

/** Every flag of `trees` has a table row in `doc` that gives its default. */
const documentsEveryFlag = (doc: string, trees: ReadonlyArray<SettingsTree>) => {
  for (const { path, setting } of trees.flatMap((tree) => entries(tree))) {
    const row = doc.split("\n").find((line) => line.startsWith(`| \`--${flagName(path)}\``))
    expect(row, `--${flagName(path)} is missing`).toBeDefined()
    if (setting.defaultText !== "") expect(row).toContain(`\`${setting.defaultText}\``)
  }
}

/** The rows of the first table under a heading of configuration.md. */
const tableUnder = (heading: string): Array<string> => {
  const lines = (read("configuration.md").split(`${heading}\n`)[1] ?? "").split("\n")
  const start = lines.findIndex((line) => line.startsWith("| `--"))
  const end = lines.findIndex((line, index) => index > start && !line.startsWith("| `--"))
  return lines.slice(start, end)
}

describe("docs", () => {
  it("configuration.md lists every server, agent and forward flag with its key, default and help, from the settings", () => {
    // `npm run docs:config` rewrites these tables from the code.
    expect(tableUnder("### `pico server`")).toEqual(referenceRows(serverSettings))
    expect(tableUnder("### `pico agent`")).toEqual(referenceRows(agentSettings))
    expect(tableUnder("### `pico forward tcp`")).toEqual(referenceRows(forwardTcpSettings))
  })

  it("configuration.md documents every flag of dev cluster with its default", () => {
    documentsEveryFlag(read("configuration.md"), [devClusterSettings])
  })

  it("operations.md documents every flag of pico status with its default", () => {
    documentsEveryFlag(read("operations.md"), [statusSettings])
  })
})
