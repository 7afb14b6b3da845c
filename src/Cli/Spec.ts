import type { Effect } from "effect"
import { entries, flagName } from "../PicoConfig/Resolve.js"
import type { Setting, SettingsTree } from "../PicoConfig/Setting.js"

/** What a command's code receives once the command line has been parsed. */
export interface Invocation {
  /** The raw values of the flags that were given, by flag name: the command's own and its parents'. */
  readonly flags: Readonly<Record<string, unknown>>
  /** The positional arguments, in the order the command declares them. */
  readonly args: ReadonlyArray<string>
  readonly version: string
}

export type Runner = (invocation: Invocation) => Effect.Effect<void, unknown>

export interface ArgSpec {
  readonly name: string
  readonly description: string
}

/**
 * One `pico` command: the single description the parser (@effect/cli), `--help` and the command-line checks are
 * all built from. Plain data, so `--help` and `--version` answer without loading any command's code.
 */
export interface CommandSpec {
  readonly name: string
  /** One line, in the parent's list of commands. */
  readonly summary: string
  /** The paragraphs `--help` shows; the summary when absent. */
  readonly description?: ReadonlyArray<string>
  readonly examples?: ReadonlyArray<string>
  /** The command's flags. Subcommands accept their parents' flags too (`pico status --output json cluster nodes`). */
  readonly settings?: SettingsTree
  /** Help headings for top-level sections of `settings`; flags of other sections are listed under "Flags". */
  readonly sections?: Readonly<Record<string, string>>
  readonly args?: ReadonlyArray<ArgSpec>
  readonly subcommands?: ReadonlyArray<CommandSpec>
  /** Loads the command's code when it runs, so each command loads only its own modules. */
  readonly load?: () => Promise<Runner>
}

export interface Flag {
  readonly name: string
  readonly setting: Setting<unknown>
  /** The top-level section of the settings tree it comes from ("proxy"), or "" for a top-level setting. */
  readonly section: string
}

/** The flags a command accepts, its parents' first, in the order the settings tables declare them. */
export const flagsOf = (path: ReadonlyArray<CommandSpec>): ReadonlyArray<Flag> =>
  path.flatMap((command) =>
    entries(command.settings ?? {}).map(({ path: keys, setting }) => ({
      name: `--${flagName(keys)}`,
      setting,
      section: keys.length > 1 ? (keys[0] as string) : "",
    })),
  )

/** "pico status cluster nodes". */
export const commandName = (path: ReadonlyArray<CommandSpec>): string =>
  path.map((command) => command.name).join(" ")

/**
 * The parser's built-in flags that `pico` keeps, given before any command. Its others (--wizard, --log-level,
 * which would sit beside --log.level) are refused as unknown flags.
 */
export const rootFlags = [
  {
    name: "--help",
    usage: "-h, --help",
    takesValue: false,
    description: "Show help; after a command, its help.",
  },
  { name: "--version", usage: "--version", takesValue: false, description: "Print the version." },
  {
    name: "--completions",
    usage: "--completions shell",
    takesValue: true,
    description: "Print a completion script for bash, fish or zsh, e.g. pico --completions bash >> ~/.bashrc",
  },
] as const
