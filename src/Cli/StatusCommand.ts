import { Console, Effect, Redacted } from "effect"
import { readSecretValue } from "../PicoConfig/KeyMaterial.js"
import { statusSettings } from "../PicoConfig/Status.js"
import { type StatusQuery, statusProgram, statusQueries } from "../programs/status.js"
import { StatusClient, StatusError } from "../Status.js"
import { loadSettings } from "./Program.js"
import type { Runner } from "./Spec.js"

/**
 * A leaf command: asks its question through the StatusClient and prints the answer. Any failure is one line on
 * stderr ("failed to get cluster nodes: cannot reach localhost:8002: connect ECONNREFUSED ...") and exit 1.
 */
const show =
  (question: (args: ReadonlyArray<string>) => StatusQuery): Runner =>
  (invocation) =>
    Effect.gen(function* () {
      const settings = yield* loadSettings(statusSettings, invocation)
      const asked = question(invocation.args)
      yield* Effect.gen(function* () {
        const token = yield* readSecretValue(settings.auth.token, "auth.token").pipe(
          Effect.mapError(
            (error) => new StatusError({ reason: "bad setting", message: error.message, cause: error }),
          ),
        )
        const target = {
          serverUrl: settings.server.url,
          forward: settings.forward === "" ? undefined : settings.forward,
          token: token === undefined ? undefined : Redacted.make(token),
          timeout: settings.timeout,
        }
        yield* statusProgram(asked, settings.output).pipe(Effect.provide(StatusClient.layer(target)))
      }).pipe(Effect.tapError((error) => Console.error(`failed to get ${asked.what}: ${error.message}`)))
    })

export const proxyEndpoints = show(() => statusQueries.proxyEndpoints)
export const clusterNodes = show(() => statusQueries.clusterNodes)
export const clusterNode = show(([id = ""]) => statusQueries.clusterNode(id))
export const gossipNodes = show(() => statusQueries.gossipNodes)
export const gossipNode = show(([id = ""]) => statusQueries.gossipNode(id))
