import { createRequire } from "node:module"
import { Command } from "@effect/cli"
import { Console, Effect, Layer, Option } from "effect"
import { configFileOptions, settingsOptions } from "./PicoConfig/Flags.js"
import type { Resolved, SettingsTree } from "./PicoConfig/Setting.js"
import * as PicoConfig from "./PicoConfig.js"
import * as PicoLogger from "./PicoLogger.js"
import { agentProgram } from "./programs/agent.js"
import { serverLayer } from "./programs/server.js"

const { version } = createRequire(import.meta.url)("../package.json") as { version: string }

interface CommonFlags {
  readonly settings: Record<string, unknown>
  readonly configPath: Option.Option<string>
  readonly expandEnv: boolean
}

const commonOptions = (tree: SettingsTree) => ({
  settings: settingsOptions(tree),
  configPath: configFileOptions.path,
  expandEnv: configFileOptions.expandEnv,
})

const loadConfig = <T extends SettingsTree>(
  tree: T,
  flags: CommonFlags,
  check?: (config: Resolved<T>) => string | undefined,
) =>
  PicoConfig.load(
    tree,
    {
      flags: flags.settings,
      configPath: Option.getOrUndefined(flags.configPath),
      expandEnv: flags.expandEnv,
      env: process.env,
    },
    check,
  )

/** A bad config is one plain line for a human, whether found while loading or while reading keys and certificates. */
const reportConfigError = (error: PicoConfig.ConfigError) => Console.error(`invalid config: ${error.message}`)

/**
 * Runs a program under the JSON logger, logging its config (secrets redacted) first and its fatal error last.
 * Any failure exits 1.
 */
const withLogging =
  (program: string, tree: SettingsTree, config: { readonly log: PicoLogger.LogSettings }) =>
  <E extends { readonly message: string }, R>(effect: Effect.Effect<never, E, R>) =>
    Effect.logInfo(`starting pico ${program}`).pipe(
      Effect.annotateLogs({ subsystem: "main", version, config: PicoConfig.redacted(tree, config) }),
      Effect.zipRight(effect),
      Effect.tapError((error) =>
        error instanceof PicoConfig.ConfigError
          ? reportConfigError(error)
          : Effect.logError(error.message).pipe(Effect.annotateLogs("subsystem", "main")),
      ),
      Effect.provide(PicoLogger.layer(config.log)),
    )

const serverCommand = Command.make("server", commonOptions(PicoConfig.serverSettings), (flags) =>
  Effect.gen(function* () {
    const config = yield* Effect.tapError(
      loadConfig(PicoConfig.serverSettings, flags, PicoConfig.serverConfigProblem),
      reportConfigError,
    )
    return yield* Layer.launch(serverLayer(config)).pipe(
      withLogging("server", PicoConfig.serverSettings, config),
    )
  }),
).pipe(
  Command.withDescription(
    "Run a Pico server node. It listens on three ports: proxy (8000) for client requests, upstream (8001) for " +
      "agent tunnels, and admin (8002) for health and readiness. Every flag can also " +
      "be set in a YAML file given with --config.path (flags win over the file, the file over defaults). " +
      "Example: pico server --proxy.bind-addr :8000 --upstream.bind-addr :8001",
  ),
)

const agentCommand = Command.make("agent", commonOptions(PicoConfig.agentSettings), (flags) =>
  Effect.gen(function* () {
    const config = yield* Effect.tapError(loadConfig(PicoConfig.agentSettings, flags), reportConfigError)
    if (config.endpoints.length === 0) {
      const error = new PicoConfig.ConfigError({
        message: "--endpoints: at least one endpoint is required, e.g. my-endpoint/localhost:4000",
      })
      yield* reportConfigError(error)
      return yield* error
    }
    return yield* agentProgram(config).pipe(withLogging("agent", PicoConfig.agentSettings, config))
  }),
).pipe(
  Command.withDescription(
    "Run a Pico agent next to your services. For each --endpoints entry it opens an outbound tunnel to the " +
      "Pico server, registers the endpoint id, and forwards the requests that arrive to the local address. " +
      "Example: pico agent --endpoints my-endpoint/localhost:4000 --server.url http://pico.example.com:8001",
  ),
)

const pico = Command.make("pico").pipe(
  Command.withDescription(
    "Pico: a reverse-tunnel proxy that serves production traffic from a cluster of nodes.",
  ),
  Command.withSubcommands([serverCommand, agentCommand]),
)

export const cli = Command.run(pico, { name: "pico", version })
