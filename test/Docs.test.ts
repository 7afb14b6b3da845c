import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { devClusterSettings } from "../src/PicoConfig/DevCluster.js"
import { entries, flagName } from "../src/PicoConfig/Resolve.js"
import type { SettingsTree } from "../src/PicoConfig/Setting.js"
import { statusSettings } from "../src/PicoConfig/Status.js"
import { agentSettings, serverSettings } from "../src/PicoConfig.js"

const read = (path: string) => readFileSync(new URL(`../docs/${path}`, import.meta.url), "utf8")

/** Every flag of `trees` has a table row in `doc` that gives its default. */
const documentsEveryFlag = (doc: string, trees: ReadonlyArray<SettingsTree>) => {
  for (const { path, setting } of trees.flatMap((tree) => entries(tree))) {
    const row = doc.split("\n").find((line) => line.startsWith(`| \`--${flagName(path)}\``))
    expect(row, `--${flagName(path)} is missing`).toBeDefined()
    if (setting.defaultText !== "") expect(row).toContain(`\`${setting.defaultText}\``)
  }
}

describe("docs", () => {
  it("configuration.md documents every flag of server, agent and dev cluster with its default", () => {
    documentsEveryFlag(read("configuration.md"), [serverSettings, agentSettings, devClusterSettings])
  })

  it("operations.md documents every flag of pico status with its default", () => {
    documentsEveryFlag(read("operations.md"), [statusSettings])
  })
})
