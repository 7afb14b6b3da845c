#!/usr/bin/env node
import { createRequire } from "node:module"
import { main } from "../Cli.js"
import { setHeapGrowth } from "../internal/HeapGrowth.js"

// dist/bin/pico.js, built or bundled, sits two levels below package.json.
const { version } = createRequire(import.meta.url)("../../package.json") as { version: string }

// The first SIGINT/SIGTERM starts a graceful drain (NodeRuntime interrupts the program and finalizers run);
// a second one means "now".
let signals = 0
const onSignal = () => {
  signals++
  if (signals > 1) {
    process.stderr.write(
      `${JSON.stringify({ level: "warn", ts: new Date().toISOString(), subsystem: "main", msg: "second signal: exiting now" })}\n`,
    )
    process.exit(1)
  }
}
process.on("SIGINT", onSignal)
process.on("SIGTERM", onSignal)

setHeapGrowth()
main(process.argv, version)
