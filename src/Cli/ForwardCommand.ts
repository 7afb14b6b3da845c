import { Effect, Layer } from "effect"
import * as PicoConfig from "../PicoConfig.js"
import { forwardTcpLayer } from "../programs/forward.js"
import { loadSettings, withLogging } from "./Program.js"
import type { Runner } from "./Spec.js"

/** `pico forward tcp`: a local port for a TCP endpoint, until interrupted. */
export const tcp: Runner = (invocation) =>
  Effect.gen(function* () {
    const config = yield* loadSettings(
      PicoConfig.forwardTcpSettings,
      invocation,
      PicoConfig.forwardTcpConfigProblem,
    )
    return yield* Layer.launch(forwardTcpLayer(config)).pipe(
      withLogging("forward", PicoConfig.forwardTcpSettings, config, invocation.version),
    )
  })
