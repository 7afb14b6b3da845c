import { Effect, Layer } from "effect"
import * as PicoConfig from "../PicoConfig.js"
import { serverLayer } from "../programs/server.js"
import { loadSettings, withLogging } from "./Program.js"
import type { Runner } from "./Spec.js"

/** `pico server`: one node, until SIGTERM/SIGINT drains it. */
export const run: Runner = (invocation) =>
  Effect.gen(function* () {
    const config = yield* loadSettings(PicoConfig.serverSettings, invocation, PicoConfig.serverConfigProblem)
    return yield* Layer.launch(serverLayer(config)).pipe(
      withLogging("server", PicoConfig.serverSettings, config, invocation.version),
    )
  })
