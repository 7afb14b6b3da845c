import { type Shell, shells } from "./Completions.js"
import { type CommandSpec, commandName, type Flag, flagsOf, rootFlags } from "./Spec.js"

/** What the command line asks for, found before any command's code is loaded. */
export type Request =
  | { readonly _tag: "Help"; readonly path: ReadonlyArray<CommandSpec> }
  | { readonly _tag: "Version" }
  /** `--completions`: the completion script for this shell. */
  | { readonly _tag: "Completions"; readonly shell: Shell }
  /**
   * A command to run: handed to the parser as `args`, the same words in the one order it takes
   * (commands, then positional arguments, then flags), so a flag may come anywhere after its command.
   */
  | { readonly _tag: "Run"; readonly path: ReadonlyArray<CommandSpec>; readonly args: ReadonlyArray<string> }
  /** One line naming the command and what to fix. */
  | { readonly _tag: "Invalid"; readonly message: string }

const editDistance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++)
      current[j] = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      )
    previous = current
  }
  return previous[b.length] as number
}

/** The known name closest to a typo, if it is close enough to be what was meant. */
const closest = (typo: string, known: ReadonlyArray<string>): string | undefined => {
  const ranked = known
    .map((name) => ({ name, distance: editDistance(typo, name) }))
    .sort((a, b) => a.distance - b.distance)[0]
  return ranked !== undefined && ranked.distance <= Math.max(2, Math.floor(typo.length / 5))
    ? ranked.name
    : undefined
}

const didYouMean = (typo: string, known: ReadonlyArray<string>): string => {
  const suggestion = closest(typo, known)
  return suggestion === undefined ? "" : ` (did you mean ${suggestion}?)`
}

/**
 * Walks the command line the way the parser will: subcommand names pick the command, flags are checked against
 * the chosen command's (and its parents') settings. A mistake is reported against the command it was made in,
 * which the parser does not do for a typo under `status`. `--help` anywhere wins over any mistake.
 */
export const locate = (root: CommandSpec, args: ReadonlyArray<string>): Request => {
  const path: Array<CommandSpec> = [root]
  const positional: Array<string> = []
  const flagWords: Array<string> = []
  let help = false
  let version = false
  let completions: Shell | undefined
  let problem: string | undefined
  const seen = new Set<string>()
  const fail = (message: string) => {
    problem ??= `${commandName(path)}: ${message}`
  }
  for (let index = 0; index < args.length; index++) {
    const arg = args[index] as string
    if (arg === "--help" || arg === "-h") {
      help = true
      continue
    }
    const command = path[path.length - 1] as CommandSpec
    if (arg.startsWith("-")) {
      const [name, inline] = arg.includes("=") ? [arg.slice(0, arg.indexOf("=")), true] : [arg, false]
      const flags: ReadonlyArray<Flag> = flagsOf(path)
      const flag = flags.find((candidate) => candidate.name === name)
      const rootFlag = path.length === 1 ? rootFlags.find((candidate) => candidate.name === name) : undefined
      if (flag === undefined && rootFlag === undefined) {
        fail(
          `unknown flag ${name}${didYouMean(
            name,
            flags.map((known) => known.name),
          )}`,
        )
        continue
      }
      // The parser would call a second one an "unknown argument"; only a list setting may be repeated.
      if (seen.has(name) && flag?.setting.repeated !== true) fail(`${name} given twice`)
      seen.add(name)
      if (name === "--version") version = true
      // `--flag=` is an empty list for a list setting, and nothing at all for any other.
      if (
        inline &&
        arg.endsWith("=") &&
        flag !== undefined &&
        !flag.setting.commaSeparated &&
        !flag.setting.repeated
      )
        fail(`${name} needs a value`)
      flagWords.push(arg)
      const takesValue = flag?.setting.takesValue ?? rootFlag?.takesValue ?? false
      if (takesValue && !inline) {
        const value = args[index + 1]
        // A true/false setting given alone is on, as a switch would be: `--access-log.query`.
        if (flag?.setting.valueName === "bool" && (value === undefined || value.startsWith("-"))) {
          flagWords.push("true")
          continue
        }
        if (value === undefined) fail(`${name} needs a value`)
        // `--server.url --follow` would take the next flag (a subcommand's, not known yet) as the value.
        else if (value.startsWith("--")) fail(`${name} needs a value before ${value}`)
        else flagWords.push(value)
        index++
      }
      if (name === "--completions") {
        const shell = inline ? arg.slice(arg.indexOf("=") + 1) : args[index]
        const known = shells.find((each) => each === shell)
        if (known !== undefined) completions = known
        else if (shell !== undefined)
          fail(`--completions: unknown shell "${shell}"; one of ${shells.join(", ")}`)
      }
      continue
    }
    const subcommands = command.subcommands ?? []
    if (subcommands.length > 0) {
      const next = subcommands.find((candidate) => candidate.name === arg)
      if (next === undefined) {
        const names = subcommands.map((candidate) => candidate.name)
        fail(`unknown command "${arg}"${didYouMean(arg, names)}; commands: ${names.join(", ")}`)
        continue
      }
      path.push(next)
      continue
    }
    positional.push(arg)
  }
  if (help) return { _tag: "Help", path }
  if (problem !== undefined) return { _tag: "Invalid", message: problem }
  if (version) return { _tag: "Version" }
  if (completions !== undefined) return { _tag: "Completions", shell: completions }
  const commandWords = path.slice(1).map((command) => command.name)
  const ordered = [...commandWords, ...positional, ...flagWords]
  const command = path[path.length - 1] as CommandSpec
  if (command.subcommands !== undefined) return { _tag: "Help", path }
  const expected = command.args ?? []
  const extra = positional[expected.length]
  if (extra !== undefined) fail(`unexpected argument "${extra}"`)
  const missing = expected[positional.length]
  if (missing !== undefined) fail(`missing <${missing.name}>`)
  return problem === undefined ? { _tag: "Run", path, args: ordered } : { _tag: "Invalid", message: problem }
}
