import { Cause, Console, Effect, Either, Match } from "effect"
import type { AgentError } from "../Agent.js"
import type { GossipError } from "../Gossip/GossipError.js"
import { describeListenError, type ListenError } from "../internal/Listen.js"
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
    onLeft: (message) => Effect.fail(new PicoConfig.ConfigError({ reason: "invalid", message })),
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

/** Why a long-lived program can stop. */
export type ProgramFailure = PicoConfig.ConfigError | ListenError | GossipError | AgentError

/** The one place a program's failure becomes what its operator reads: one line, naming what to fix. */
const reportFailure = (error: ProgramFailure) =>
  Match.valueTags(error, {
    ConfigError: reportConfigError,
    // A listener names the flag that set its address.
    ListenError: (failed) => logFatal(describeListenError(failed)),
    GossipError: (failed) => logFatal(failed.message),
    AgentError: (failed) => logFatal(failed.message),
  })

const logFatal = (line: string) => Effect.logError(line).pipe(Effect.annotateLogs("subsystem", "main"))

/**
 * Runs a long-lived program under the JSON logger, logging its config (secrets redacted) first and its fatal error
 * last. Any failure exits 1.
 */
export const withLogging =
  (program: string, tree: SettingsTree, config: { readonly log: PicoLogger.LogSettings }, version: string) =>
  <E extends ProgramFailure, R>(effect: Effect.Effect<never, E, R>) =>
    Effect.logInfo(`starting pico ${program}`).pipe(
      Effect.annotateLogs({ subsystem: "main", version, config: PicoConfig.redacted(tree, config) }),
      Effect.zipRight(effect),
      Effect.tapError(reportFailure),
      // A bug, not a bad setting: still one error line saying what broke, never a silent exit 1.
      Effect.tapDefect((cause) => logFatal(`internal error: ${Cause.pretty(cause)}`)),
      Effect.provide(PicoLogger.layer(config.log)),
    )
