import { createRequire } from "node:module"
import { Command, Options } from "@effect/cli"
import { Console, Effect, Layer, Option } from "effect"
import * as DevCluster from "./DevCluster.js"
import { parseHostPort } from "./Domain/Address.js"
import { configFileOptions, settingsOptions } from "./PicoConfig/Flags.js"
import type { Resolved, SettingsTree } from "./PicoConfig/Setting.js"
import * as PicoConfig from "./PicoConfig.js"
import * as PicoLogger from "./PicoLogger.js"
import { agentProgram } from "./programs/agent.js"
import { serverLayer } from "./programs/server.js"
import { status } from "./StatusCli.js"

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

const balancerAddress = (port: string, defaultAddr: string) =>
  Options.text(`${port}.bind-addr`).pipe(
    Options.withDescription(`Where the built-in load balancer listens for ${port} traffic.`),
    Options.withDefault(defaultAddr),
    Options.filterMap(
      (text) => Option.fromNullable(parseHostPort(text)),
      `--${port}.bind-addr: expected an address such as ":8000" or "127.0.0.1:8000"`,
    ),
  )

const devClusterCommand = Command.make(
  "cluster",
  {
    nodes: Options.integer("nodes").pipe(
      Options.withDescription("How many nodes to start."),
      Options.withDefault(3),
      Options.filterMap(
        (count) => (count >= 1 && count <= 50 ? Option.some(count) : Option.none()),
        "--nodes must be 1 to 50",
      ),
    ),
    proxy: balancerAddress("proxy", ":8000"),
    upstream: balancerAddress("upstream", ":8001"),
    admin: balancerAddress("admin", ":8002"),
    logLevel: Options.choice("log.level", ["debug", "info", "warn", "error"]).pipe(
      Options.withDescription("Minimum log level."),
      Options.withDefault("info" as const),
    ),
  },
  (options) =>
    DevCluster.run(options).pipe(
      Effect.tapError((error) =>
        error instanceof PicoConfig.ConfigError
          ? reportConfigError(error)
          : Effect.logError(error.message).pipe(Effect.annotateLogs("subsystem", "main")),
      ),
      Effect.provide(PicoLogger.layer({ level: options.logLevel, subsystems: [] })),
    ),
).pipe(
  Command.withDescription(
    "Run a whole cluster on this machine for development: N real nodes gossiping over loopback, behind a " +
      "built-in load balancer on the usual ports (proxy :8000, upstream :8001, admin :8002). Point an agent " +
      "and curl at it exactly as at a production cluster. Example: pico dev cluster --nodes 3",
  ),
)

const devCommand = Command.make("dev").pipe(
  Command.withDescription("Tools for developing with Pico on one machine."),
  Command.withSubcommands([devClusterCommand]),
)

const pico = Command.make("pico").pipe(
  Command.withDescription(
    "Pico: a reverse-tunnel proxy that serves production traffic from a cluster of nodes.",
  ),
  Command.withSubcommands([serverCommand, agentCommand, status, devCommand]),
)

export const cli = Command.run(pico, { name: "pico", version })
