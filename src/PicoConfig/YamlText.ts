import * as Either from "effect/Either"
import { parseDocument, type YAMLError } from "yaml"

/** Where in `text` an offset falls, as editors count: "line 3, column 4". */
const position = (text: string, offset: number): string => {
  const before = text.slice(0, offset)
  const line = before.split("\n").length
  return `line ${line}, column ${offset - before.lastIndexOf("\n")}`
}

/** What is wrong, in Pico's words where the library's would confuse (it suggests one of its own functions). */
const describe = (problem: YAMLError): string =>
  problem.code === "MULTIPLE_DOCS" ? "more than one YAML document (---) in one file" : problem.message

/**
 * A configuration file's YAML as plain data, or its first problem with its line and column. Never the line
 * itself, as the library's own messages quote it: that line may hold a secret. Warnings (an unknown tag such as
 * `!foo`) are problems too: the library would otherwise print them outside the log and go on.
 */
export const parseYamlText = (text: string): Either.Either<unknown, string> => {
  const document = parseDocument(text, { prettyErrors: false })
  const problem = document.errors[0] ?? document.warnings[0]
  if (problem !== undefined) return Either.left(`${position(text, problem.pos[0])}: ${describe(problem)}`)
  try {
    return Either.right(document.toJS())
  } catch (error) {
    // An alias to no anchor, found only while building the value.
    return Either.left((error as Error).message)
  }
}
