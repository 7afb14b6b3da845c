// `npm run mutate -- [group ...] [stryker flags]`, e.g. `npm run mutate -- tunnel --concurrency 1`: mutation
// testing with StrykerJS, one run per group of mutation-groups.mjs (all groups by default), each against that
// group's unit tests; then a score per module. Runs incrementally: only mutants in changed code, or covered by
// changed tests, are tested again (`--force` tests them all). StrykerJS needs Node >= 22, so the npm script runs
// this under `npx -y node@24`.

import { spawnSync } from "node:child_process"
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { groups } from "./mutation-groups.mjs"

const MIN_SCORE = 80

const stryker = "node_modules/@stryker-mutator/core/bin/stryker.js"

const args = process.argv.slice(2)
const named = args.filter((arg) => arg in groups)
// A word after a flag is its value (`--concurrency 1`); any other must name a group.
const flags = args.filter((arg) => !(arg in groups))
const unknown = args.find(
  (arg, i) => !(arg in groups) && !arg.startsWith("-") && !args[i - 1]?.startsWith("-"),
)
if (unknown !== undefined) {
  console.error(`unknown mutation group ${unknown}: one of ${Object.keys(groups).join(", ")}`)
  process.exit(2)
}

const detected = new Set(["Killed", "Timeout"])
const undetected = new Set(["Survived", "NoCoverage"])

/**
 * Static mutants (in code that runs as a module loads) have no per-test coverage, so Stryker reuses a surviving
 * one's result even after the tests changed (stryker-js#6119): forget those results, so they are tested again.
 */
const forgetStaticSurvivors = (incrementalFile) => {
  if (!existsSync(incrementalFile)) return
  const report = JSON.parse(readFileSync(incrementalFile, "utf8"))
  for (const file of Object.values(report.files))
    file.mutants = file.mutants.filter((mutant) => !(mutant.static && undetected.has(mutant.status)))
  writeFileSync(incrementalFile, JSON.stringify(report))
}
const rows = []
let failed = false
for (const group of named.length > 0 ? named : Object.keys(groups)) {
  const report = `reports/mutation/${group}.json`
  rmSync(report, { force: true })
  forgetStaticSurvivors(`reports/mutation/${group}.incremental.json`)
  const started = Date.now()
  const run = spawnSync(process.execPath, [stryker, "run", "stryker.config.mjs", ...flags], {
    stdio: "inherit",
    env: { ...process.env, MUTATE_GROUP: group },
  })
  const seconds = Math.round((Date.now() - started) / 1000)
  if (run.status !== 0) {
    console.error(`mutation group ${group} failed (exit ${run.status})`)
    failed = true
    continue
  }
  if (!existsSync(report)) {
    console.error(`mutation group ${group} wrote no report: did any of its tests run?`)
    failed = true
    continue
  }
  for (const [file, { mutants }] of Object.entries(JSON.parse(readFileSync(report, "utf8")).files)) {
    const count = (statuses) => mutants.filter((mutant) => statuses.has(mutant.status)).length
    const [caught, missed] = [count(detected), count(undetected)]
    const score = caught + missed === 0 ? 100 : (100 * caught) / (caught + missed)
    if (score < MIN_SCORE) failed = true
    rows.push({ group, file, mutants: mutants.length, caught, missed, score: score.toFixed(1), seconds })
  }
}
console.table(rows)
if (failed) {
  console.error(`a group failed, or a module scored under ${MIN_SCORE}%`)
  process.exit(1)
}
