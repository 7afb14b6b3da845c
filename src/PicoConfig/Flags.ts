import { Options } from "@effect/cli"
import { Option } from "effect"
import { entries, flagName } from "./Resolve.js"
import type { SettingsTree } from "./Setting.js"

const describe = (description: string, defaultText: string, repeated: boolean): string =>
  `${description}${defaultText === "" ? "" : ` (default: ${defaultText})`}${repeated ? " [repeatable]" : ""}`

/**
 * One CLI flag per setting. Every flag is optional here, so "not given" stays visible and the file and the
 * defaults can fill in behind it (flags > file > defaults). The result maps flag names to the raw values given.
 */
export const settingsOptions = (tree: SettingsTree): Options.Options<Record<string, unknown>> => {
  const flags: Record<string, Options.Options<readonly [string, unknown] | undefined>> = {}
  for (const { path, setting } of entries(tree)) {
    const name = flagName(path)
    const base = Options.text(name).pipe(
      Options.withDescription(describe(setting.description, setting.defaultText, setting.repeated)),
      Options.withPseudoName(setting.valueName),
    )
    flags[name] = setting.repeated
      ? base.pipe(
          Options.repeated,
          Options.map((values) => (values.length === 0 ? undefined : ([name, values] as const))),
        )
      : base.pipe(
          Options.optional,
          Options.map(Option.match({ onNone: () => undefined, onSome: (value) => [name, value] as const })),
        )
  }
  return Options.all(flags).pipe(
    Options.map((given) => Object.fromEntries(Object.values(given).filter((pair) => pair !== undefined))),
  )
}

/** `--config.path` and `--config.expand-env`, shared by every program that reads a config file. */
export const configFileOptions = {
  path: Options.file("config.path", { exists: "yes" }).pipe(
    Options.withDescription(
      "YAML config file. Its keys mirror the flags: --proxy.bind-addr is proxy.bind_addr.",
    ),
    Options.optional,
  ),
  expandEnv: Options.boolean("config.expand-env").pipe(
    Options.withDescription(
      "Expand ${VAR}, $VAR and ${VAR:default} in the config file from the environment before parsing it.",
    ),
  ),
}
