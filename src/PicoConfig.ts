import { readFile } from "node:fs/promises"
import { Effect, Either } from "effect"
import { describeSystemError } from "./internal/SystemError.js"
import type { agentSettings } from "./PicoConfig/Agent.js"
import { ConfigError } from "./PicoConfig/ConfigError.js"
import { expandEnv } from "./PicoConfig/ExpandEnv.js"
import type { forwardTcpSettings } from "./PicoConfig/Forward.js"
import { resolve } from "./PicoConfig/Resolve.js"
import type { serverSettings } from "./PicoConfig/Server.js"
import type { Resolved, SettingsTree } from "./PicoConfig/Setting.js"
import { parseYamlText } from "./PicoConfig/YamlText.js"

export { type AgentEndpoint, agentSettings } from "./PicoConfig/Agent.js"
export { ConfigError } from "./PicoConfig/ConfigError.js"
export { forwardTcpConfigProblem, forwardTcpSettings } from "./PicoConfig/Forward.js"
export { redacted } from "./PicoConfig/Resolve.js"
export { serverConfigProblem, serverSettings } from "./PicoConfig/Server.js"

export type ServerConfigShape = Resolved<typeof serverSettings>
export type AgentConfigShape = Resolved<typeof agentSettings>
export type ForwardTcpConfigShape = Resolved<typeof forwardTcpSettings>
export type LogConfigShape = ServerConfigShape["log"]

export interface LoadOptions {
  /** Raw flag values keyed by flag name (only the flags that were given). */
  readonly flags: Readonly<Record<string, unknown>>
  readonly configPath?: string | undefined
  readonly expandEnv?: boolean | undefined
  readonly env?: Readonly<Record<string, string | undefined>>
}

const readConfigFile = (path: string, expand: boolean, env: Readonly<Record<string, string | undefined>>) =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (cause) =>
      new ConfigError({
        reason: "unreadable",
        message: `--config.path ${path}: ${describeSystemError(cause)}`,
        cause,
      }),
  }).pipe(
    Effect.flatMap((text) =>
      Either.match(parseYamlText(expand ? expandEnv(text, env) : text), {
        onLeft: (problem) =>
          Effect.fail(new ConfigError({ reason: "invalid", message: `parse ${path}: ${problem}` })),
        onRight: Effect.succeed,
      }),
    ),
  )

/**
 * Reads and validates a settings tree from flags > config file > defaults; `check` catches settings that are
 * valid alone but not together.
 */
export const load = <T extends SettingsTree>(
  tree: T,
  options: LoadOptions,
  check: (config: Resolved<T>) => string | undefined = () => undefined,
): Effect.Effect<Resolved<T>, ConfigError> =>
  Effect.gen(function* () {
    const file =
      options.configPath === undefined
        ? undefined
        : {
            path: options.configPath,
            document: yield* readConfigFile(
              options.configPath,
              options.expandEnv ?? false,
              options.env ?? {},
            ),
          }
    const resolved = resolve(
      tree,
      file === undefined ? { flags: options.flags } : { flags: options.flags, file },
    )
    if (Either.isLeft(resolved)) return yield* new ConfigError({ reason: "invalid", message: resolved.left })
    const problem = check(resolved.right)
    if (problem !== undefined) return yield* new ConfigError({ reason: "invalid", message: problem })
    return resolved.right
  })
