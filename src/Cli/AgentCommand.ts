import { Effect, Layer } from "effect"
import * as PicoConfig from "../PicoConfig.js"
import { agentLayer } from "../programs/agent.js"
import { loadSettings, reportConfigError, withLogging } from "./Program.js"
import type { Runner } from "./Spec.js"

/** `pico agent`: one tunnel per endpoint, until interrupted or refused by the server. */
export const run: Runner = (invocation) =>
  Effect.gen(function* () {
    const config = yield* loadSettings(PicoConfig.agentSettings, invocation)
    if (config.endpoints.length === 0) {
      const error = new PicoConfig.ConfigError({
        reason: "invalid",
        message: "--endpoints: at least one endpoint is required, e.g. my-endpoint/localhost:4000",
      })
      yield* reportConfigError(error)
      return yield* error
    }
    return yield* Layer.launch(agentLayer(config)).pipe(
      withLogging("agent", PicoConfig.agentSettings, config, invocation.version),
    )
  })
