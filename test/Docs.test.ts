import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { entries, flagName } from "../src/PicoConfig/Resolve.js"
import { agentSettings, serverSettings } from "../src/PicoConfig.js"

const configurationDoc = readFileSync(new URL("../docs/configuration.md", import.meta.url), "utf8")

describe("docs/configuration.md", () => {
  it("documents every flag with its default", () => {
    for (const { path, setting } of [...entries(serverSettings), ...entries(agentSettings)]) {
      const row = configurationDoc.split("\n").find((line) => line.startsWith(`| \`--${flagName(path)}\``))
      expect(row, `--${flagName(path)} is missing`).toBeDefined()
      if (setting.defaultText !== "") expect(row).toContain(`\`${setting.defaultText}\``)
    }
  })
})
