import { defineConfig } from "vitest/config"
import { currentGroup } from "./scripts/mutation-groups.mjs"

// The unit tests of one mutation group, for Stryker (stryker.config.mjs).
export default defineConfig({
  test: { include: currentGroup().tests, passWithNoTests: true, testTimeout: 60_000, hookTimeout: 60_000 },
})
