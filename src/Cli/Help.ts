import { type CommandSpec, commandName, type Flag, flagsOf, rootFlags } from "./Spec.js"

export interface HelpStyle {
  /** Lines are wrapped to this many columns. */
  readonly width: number
  /** Bold headings (a terminal that wants colour); plain text otherwise. */
  readonly color: boolean
}

/** Colour only for a terminal, and never with NO_COLOR set (https://no-color.org). */
export const wantsColor = (isTTY: boolean | undefined, env: Readonly<Record<string, string | undefined>>) =>
  isTTY === true && (env.NO_COLOR ?? "") === ""

/**
 * Greedy word wrap; a word longer than the width gets a line of its own rather than being cut. `tail` ("(default
 * 15s)") is kept whole, on the last line.
 */
const wrap = (text: string, width: number, tail?: string): Array<string> => {
  const lines: Array<string> = []
  let line = ""
  const words = text.split(/\s+/).filter((word) => word !== "")
  // The tail ("(default 15s)") stays whole on a line, unless it is too long for any.
  const tailWords = tail === undefined ? [] : tail.length > width ? tail.split(" ") : [tail]
  for (const word of [...words, ...tailWords]) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else line = line === "" ? word : `${line} ${word}`
  }
  return line === "" ? lines : [...lines, line]
}

/** Widest the left column of a two-column list gets; longer entries put their text on the next line. */
const MAX_LEFT = 34

type Row = readonly [left: string, text: string, tail?: string]

const leftColumn = (rows: ReadonlyArray<Row>) =>
  Math.min(MAX_LEFT, Math.max(0, ...rows.map(([name]) => name.length + 4)))

/** Rows of "left  text", the text wrapped in a column of its own that starts at `left`. */
const table = (rows: ReadonlyArray<Row>, width: number, left = leftColumn(rows)): Array<string> =>
  rows.flatMap(([name, text, tail]) => {
    const body = wrap(text, width - left, tail)
    const first = `  ${name}`
    if (first.length + 2 > left) return [first, ...body.map((line) => " ".repeat(left) + line)]
    return body.map((line, index) => (index === 0 ? first.padEnd(left) : " ".repeat(left)) + line)
  })

/** Where the text goes under its name when names are too long for a column beside them. */
const STACKED_INDENT = 6

/**
 * Each name on a line of its own with its text indented below, as Go tools print flags: long dotted names leave
 * the text most of the width.
 */
const stackedTable = (rows: ReadonlyArray<Row>, width: number): Array<string> =>
  rows.flatMap(([name, text, tail]) => [
    `  ${name}`,
    ...wrap(text, width - STACKED_INDENT, tail).map((line) => " ".repeat(STACKED_INDENT) + line),
  ])

const flagRow = ({ name, setting }: Flag): Row => {
  // A true/false setting may be given alone (Argv.ts): its value is optional.
  const value = setting.valueName === "bool" ? "[bool]" : setting.valueName
  const usage = setting.takesValue ? `${name} ${value}${setting.commaSeparated ? ",..." : ""}` : name
  const notes = [
    setting.repeated ? "repeatable" : "",
    setting.defaultText === "" ? "" : `default ${setting.defaultText}`,
  ].filter((note) => note !== "")
  return notes.length === 0
    ? [usage, setting.description]
    : [usage, setting.description, `(${notes.join("; ")})`]
}

/** The flags in groups: those of unnamed sections under "Flags", then one group per named section. */
const flagGroups = (path: ReadonlyArray<CommandSpec>) => {
  const sections = Object.assign({}, ...path.map((command) => command.sections ?? {})) as Record<
    string,
    string
  >
  const groups = new Map<string, Array<Flag>>([["Flags", []]])
  for (const flag of flagsOf(path)) {
    const title = sections[flag.section] ?? "Flags"
    groups.set(title, [...(groups.get(title) ?? []), flag])
  }
  return [...groups].filter(([, flags]) => flags.length > 0)
}

/** Every runnable command under `command`, named relative to it ("cluster node <node-id>"). */
const leaves = (command: CommandSpec, prefix: string): Array<Row> =>
  (command.subcommands ?? []).flatMap((child) => {
    const name = `${prefix}${child.name}`
    if (child.subcommands !== undefined) return leaves(child, `${name} `)
    const args = (child.args ?? []).map((arg) => ` <${arg.name}>`).join("")
    return [[`${name}${args}`, child.summary]]
  })

/**
 * `pico ... --help`: usage, description, subcommands or arguments, every flag with its default grouped by port or
 * subsystem, and examples. Built from the command specs and their settings tables, like the parser.
 */
export const renderHelp = (path: ReadonlyArray<CommandSpec>, style: HelpStyle): string => {
  const command = path[path.length - 1] as CommandSpec
  const heading = (text: string) => (style.color ? `\x1b[1m${text}\x1b[22m` : text)
  const blocks: Array<Array<string>> = []
  const args = (command.args ?? []).map((arg) => ` <${arg.name}>`).join("")
  const commandWord = command.subcommands === undefined ? "" : " <command>"
  blocks.push([`${heading("Usage:")} ${commandName(path)}${commandWord}${args} [flags]`])
  blocks.push(
    (command.description ?? [command.summary])
      .flatMap((paragraph) => [...wrap(paragraph, style.width), ""])
      .slice(0, -1),
  )
  if (command.subcommands !== undefined)
    blocks.push([heading("Commands:"), ...table(leaves(command, ""), style.width)])
  if (command.args !== undefined)
    blocks.push([
      heading("Arguments:"),
      ...table(
        command.args.map((arg): Row => [`<${arg.name}>`, arg.description]),
        style.width,
      ),
    ])
  const builtIns: Array<Row> =
    path.length === 1 ? rootFlags.map((flag) => [flag.usage, flag.description]) : []
  const groups = flagGroups(path).map(([title, flags]) => [title, flags.map(flagRow)] as const)
  // One layout for every group, so the descriptions line up down the whole page.
  const allRows = [...builtIns, ...groups.flatMap(([, rows]) => rows)]
  const stacked = allRows.some(([name]) => name.length + 4 > MAX_LEFT)
  const left = leftColumn(allRows)
  const flagLines = (rows: ReadonlyArray<Row>) =>
    stacked ? stackedTable(rows, style.width) : table(rows, style.width, left)
  if (builtIns.length > 0) blocks.push([heading("Flags:"), ...flagLines(builtIns)])
  for (const [title, rows] of groups) blocks.push([heading(`${title}:`), ...flagLines(rows)])
  if (command.examples !== undefined)
    blocks.push([heading("Examples:"), ...command.examples.map((example) => `  ${example}`)])
  if (command.subcommands !== undefined)
    blocks.push([`Run '${commandName(path)} <command> --help' for a command's flags.`])
  return `${blocks.map((block) => block.join("\n")).join("\n\n")}\n`
}
