import { Options } from "@effect/cli"
import { Option } from "effect"
import { entries, flagName } from "./Resolve.js"
import type { Setting, SettingsTree } from "./Setting.js"

/** The raw value a flag was given, or none when it was absent. */
const flagOptions = (name: string, setting: Setting<unknown>): Options.Options<Option.Option<unknown>> => {
  // A toggle is off unless given, so only "on" counts as given.
  if (!setting.takesValue)
    return Options.boolean(name).pipe(
      Options.withDescription(setting.description),
      Options.map((on) => (on ? Option.some(true) : Option.none())),
    )
  const text = Options.text(name).pipe(
    Options.withDescription(setting.description),
    Options.withPseudoName(setting.valueName),
  )
  return setting.repeated
    ? Options.repeated(text).pipe(
        Options.map((values) => (values.length === 0 ? Option.none() : Option.some(values))),
      )
    : Options.optional(text)
}

/**
 * One CLI flag per setting. Every value is taken as text and decoded later, by the same code that reads the YAML
 * file, so a bad value is reported the same way wherever it came from, naming the flag and the value. The result
 * maps the flags that were given to their raw values; absent flags are left out, so the file and the defaults can
 * fill in behind them (flags > file > defaults).
 */
export const settingsOptions = (tree: SettingsTree): Options.Options<Record<string, unknown>> => {
  const flags: Record<string, Options.Options<Option.Option<unknown>>> = {}
  for (const { path, setting } of entries(tree)) flags[flagName(path)] = flagOptions(flagName(path), setting)
  // Options.all needs at least one option; a subcommand may have none of its own.
  if (Object.keys(flags).length === 0) return Options.none.pipe(Options.map(() => ({})))
  return Options.all(flags).pipe(
    Options.map((given) =>
      Object.fromEntries(
        Object.entries(given).flatMap(([name, value]) => (Option.isSome(value) ? [[name, value.value]] : [])),
      ),
    ),
  )
}
