// Mutation testing, one group of scripts/mutation-groups.mjs per run: `npm run mutate` (docs/testing.md).
import { currentGroup } from "./scripts/mutation-groups.mjs"

const group = currentGroup()

/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
  testRunner: "vitest",
  // The group's tests are chosen by vitest.mutate.config.mjs, not by `testFiles`: with `testFiles`, Stryker 10.1
  // activates mutants of module-level code only after the module has loaded, so they all survive.
  vitest: { configFile: "vitest.mutate.config.mjs", related: true },
  coverageAnalysis: "perTest",
  mutate: group.mutate,
  incremental: true,
  incrementalFile: `reports/mutation/${group.name}.incremental.json`,
  reporters: ["clear-text", "progress", "html", "json"],
  htmlReporter: { fileName: `reports/mutation/${group.name}.html` },
  jsonReporter: { fileName: `reports/mutation/${group.name}.json` },
  clearTextReporter: { allowEmojis: false, reportScoreTable: false, reportMutants: true },
  // A group without unit tests yet still reports its mutants, as not covered.
  allowEmpty: true,
}
