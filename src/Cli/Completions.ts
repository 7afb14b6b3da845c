import { type CommandSpec, flagsOf, rootFlags } from "./Spec.js"

/** The shells `pico --completions` writes a script for. */
export const shells = ["bash", "fish", "zsh"] as const
export type Shell = (typeof shells)[number]

/** One command as completion sees it: where it is ("/status/cluster"), and the words that may follow it. */
interface Place {
  readonly at: string
  /** Its subcommands' names, then its flags (its parents' included, as the command line takes them). */
  readonly words: ReadonlyArray<string>
}

/** What a flag's value completes to: a file name, one of its choices, or nothing to suggest. */
type ValueKind =
  | { readonly _tag: "file" }
  | { readonly _tag: "choice"; readonly values: ReadonlyArray<string> }

const places = (root: CommandSpec): ReadonlyArray<Place> => {
  const found: Array<Place> = []
  const visit = (path: ReadonlyArray<CommandSpec>) => {
    const command = path[path.length - 1] as CommandSpec
    const flags = flagsOf(path).map((flag) => flag.name)
    // Only the root takes --version and --completions; --help goes anywhere.
    const own = path.length === 1 ? rootFlags.map((flag) => flag.name) : ["--help"]
    found.push({
      at: path
        .slice(1)
        .map((each) => `/${each.name}`)
        .join(""),
      words: [...(command.subcommands ?? []).map((each) => each.name), ...flags, ...own],
    })
    for (const child of command.subcommands ?? []) visit([...path, child])
  }
  visit([root])
  return found
}

/** Every flag that takes a value, with what its value completes to (undefined: nothing). */
const valueFlags = (root: CommandSpec): ReadonlyMap<string, ValueKind | undefined> => {
  const found = new Map<string, ValueKind | undefined>([
    ["--completions", { _tag: "choice", values: shells }],
  ])
  const visit = (path: ReadonlyArray<CommandSpec>) => {
    for (const { name, setting } of flagsOf(path.slice(-1))) {
      const { valueName } = setting
      if (!setting.takesValue || valueName === "bool") continue
      found.set(
        name,
        valueName === "file" || valueName === "path"
          ? { _tag: "file" }
          : valueName.includes("|")
            ? { _tag: "choice", values: valueName.split("|") }
            : undefined,
      )
    }
    for (const child of path[path.length - 1]?.subcommands ?? []) visit([...path, child])
  }
  visit([root])
  return found
}

const bashCase = (pattern: string, body: string) => `    ${pattern}) ${body} ;;`

/**
 * Bash (and zsh, through its bashcompinit): walks the words typed so far to the command they name, skipping flags'
 * values, then offers that command's subcommands and flags, or a flag's value. Arrays are 0-based in both shells.
 */
const bash = (root: CommandSpec, program: string): string => {
  const all = places(root)
  const values = valueFlags(root)
  const withValue = [...values.keys()].join("|")
  const valueCases = [
    // One candidate a line, and marked as file names: names with spaces stay whole, directories get their slash.
    bashCase(
      flagsWhose(values, (kind) => kind?._tag === "file").join("|"),
      "local IFS=$'\\n'; compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- \"$cur\")); return 0",
    ),
    ...[...values].flatMap(([flag, kind]) =>
      kind?._tag === "choice"
        ? [bashCase(flag, `COMPREPLY=($(compgen -W "${kind.values.join(" ")}" -- "$cur")); return 0`)]
        : [],
    ),
    // A value Pico cannot guess (an address, a duration): nothing is offered rather than the flags.
    bashCase(flagsWhose(values, (kind) => kind === undefined).join("|"), "return 0"),
  ]
  const commands = all.filter((place) => place.at !== "").map((place) => `"${place.at}"`)
  return [
    `_${program}_completions() {`,
    "  [[ -n ${ZSH_VERSION-} ]] && emulate -L ksh",
    '  local cur="${COMP_WORDS[COMP_CWORD]}" flag="${COMP_WORDS[COMP_CWORD-1]}" at="" word i',
    "  COMPREPLY=()",
    // bash splits `--flag=value` at the `=`: the flag is then the word before it.
    '  if [[ $cur == "=" ]]; then cur=""; elif [[ $flag == "=" ]]; then flag="${COMP_WORDS[COMP_CWORD-2]}"; fi',
    "  for ((i = 1; i < COMP_CWORD; i++)); do",
    '    word="${COMP_WORDS[i]}"',
    '    case "$word" in',
    bashCase(withValue, "((i++)); continue"),
    "    esac",
    `    case "$at/$word" in`,
    bashCase(commands.join("|"), 'at="$at/$word"'),
    "    esac",
    "  done",
    '  case "$flag" in',
    ...valueCases,
    "  esac",
    "  local words",
    '  case "$at" in',
    ...all.map((place) => bashCase(`"${place.at}"`, `words="${place.words.join(" ")}"`)),
    "  esac",
    '  COMPREPLY=($(compgen -W "$words" -- "$cur"))',
    "}",
    `complete -F _${program}_completions ${program}`,
    "",
  ].join("\n")
}

/** The flags among `values` whose value completes as `test` says. */
const flagsWhose = (
  values: ReadonlyMap<string, ValueKind | undefined>,
  test: (kind: ValueKind | undefined) => boolean,
): Array<string> => [...values].filter(([, kind]) => test(kind)).map(([flag]) => flag)

/** Fish: the same walk, in fish, as one function that prints the candidates. */
const fish = (root: CommandSpec, program: string): string => {
  const all = places(root)
  const values = valueFlags(root)
  const fn = `__${program}_complete`
  const commands = all.filter((place) => place.at !== "").map((place) => `'${place.at}'`)
  const valueCases = [
    `            case ${flagsWhose(values, (kind) => kind?._tag === "file").join(" ")}`,
    "                __fish_complete_path (commandline -ct)",
    ...[...values].flatMap(([flag, kind]) =>
      kind?._tag === "choice"
        ? [`            case ${flag}`, `                printf '%s\\n' ${kind.values.join(" ")}`]
        : [],
    ),
    "        end",
    "        return",
  ]
  return [
    `# ${program} completions for fish: save as ~/.config/fish/completions/${program}.fish`,
    `function ${fn}`,
    "    set -l typed (commandline -opc)",
    "    set -l at ''",
    "    set -l skip 0",
    "    for word in $typed[2..-1]",
    "        if test $skip = 1",
    "            set skip 0",
    "            continue",
    "        end",
    "        switch $word",
    `            case ${[...values.keys()].join(" ")}`,
    "                set skip 1",
    "                continue",
    "        end",
    `        if contains -- "$at/$word" ${commands.join(" ")}`,
    '            set at "$at/$word"',
    "        end",
    "    end",
    // The word being typed is a flag's value: its file or choices, or nothing to offer.
    "    if test $skip = 1",
    "        switch $typed[-1]",
    ...valueCases,
    "    end",
    "    switch $at",
    ...all.map((place) => `        case '${place.at}'\n            printf '%s\\n' ${place.words.join(" ")}`),
    "    end",
    "end",
    `complete -c ${program} -f -a '(${fn})'`,
    "",
  ].join("\n")
}

/**
 * `pico --completions SHELL`: a script completing every command, at any depth, and the flags it takes, built from
 * the same command specs as the parser and `--help`. @effect/cli's own scripts offered flags pico refuses
 * (--wizard, --log-level) and, in bash, nothing below the second level.
 */
export const completionScript = (root: CommandSpec, shell: Shell): string => {
  const program = root.name
  if (shell === "fish") return fish(root, program)
  if (shell === "bash")
    return `# ${program} completions for bash: source this file (e.g. from ~/.bashrc).\n${bash(root, program)}`
  return [
    `# ${program} completions for zsh: source this file from ~/.zshrc. It uses zsh's bash completion support.`,
    "(( $+functions[compdef] )) || { autoload -U +X compinit && compinit }",
    "autoload -U +X bashcompinit && bashcompinit",
    bash(root, program),
  ].join("\n")
}
