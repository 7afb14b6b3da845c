#!/usr/bin/env node
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect } from "effect"
import { cli } from "../Cli.js"

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

cli(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true }),
)
