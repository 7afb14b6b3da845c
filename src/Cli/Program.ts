import { Console, Effect, Either } from "effect"
import { describeListenError, ListenError } from "../internal/Listen.js"
import { configFileSettings } from "../PicoConfig/ConfigFile.js"
import { resolve } from "../PicoConfig/Resolve.js"
import type { Resolved, SettingsTree } from "../PicoConfig/Setting.js"
import * as PicoConfig from "../PicoConfig.js"
import * as PicoLogger from "../PicoLogger.js"
import type { Invocation } from "./Spec.js"

/** A bad setting is one plain line for a human, whether found while loading or while reading keys and certificates. */
export const reportConfigError = (error: PicoConfig.ConfigError) =>
  Console.error(`invalid config: ${error.message}`)

/**
 * The settings `tree` describes, from the flags given and, with --config.path, the YAML file behind them. A bad
 * value has been reported when this fails.
 */
export const loadSettings = <T extends SettingsTree>(
  tree: T,
  invocation: Invocation,
  check?: (config: Resolved<T>) => string | undefined,
): Effect.Effect<Resolved<T>, PicoConfig.ConfigError> =>
  Either.match(resolve(configFileSettings, { flags: invocation.flags }), {
    onLeft: (message) => Effect.fail(new PicoConfig.ConfigError({ message })),
    onRight: ({ config: file }) =>
      PicoConfig.load(
        tree,
        {
          flags: invocation.flags,
          configPath: file.path === "" ? undefined : file.path,
          expandEnv: file.expandEnv,
          env: process.env,
        },
        check,
      ),
  }).pipe(Effect.tapError(reportConfigError))

/** What an operator reads when a program stops: a listener names the flag that set its address. */
const failureText = (error: { readonly message: string }): string =>
  error instanceof ListenError ? describeListenError(error) : error.message

/**
 * Runs a long-lived program under the JSON logger, logging its config (secrets redacted) first and its fatal error
 * last. Any failure exits 1.
 */
export const withLogging =
  (program: string, tree: SettingsTree, config: { readonly log: PicoLogger.LogSettings }, version: string) =>
  <E extends { readonly message: string }, R>(effect: Effect.Effect<never, E, R>) =>
    Effect.logInfo(`starting pico ${program}`).pipe(
      Effect.annotateLogs({ subsystem: "main", version, config: PicoConfig.redacted(tree, config) }),
      Effect.zipRight(effect),
      Effect.tapError((error) =>
        error instanceof PicoConfig.ConfigError
          ? reportConfigError(error)
          : Effect.logError(failureText(error)).pipe(Effect.annotateLogs("subsystem", "main")),
      ),
      Effect.provide(PicoLogger.layer(config.log)),
    )
