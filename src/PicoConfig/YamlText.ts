import * as Either from "effect/Either"
import { parseDocument, type YAMLError } from "yaml"

/** Where in `text` an offset falls, as editors count: "line 3, column 4". */
const position = (text: string, offset: number): string => {
  const before = text.slice(0, offset)
  const line = before.split("\n").length
  return `line ${line}, column ${offset - before.lastIndexOf("\n")}`
}

/** Problems whose wording the library fixes, quoting at most an indicator character, never a value. */
const ownWords: Readonly<Record<string, string>> = {
  MULTIPLE_DOCS: "more than one YAML document (---) in one file",
  TAG_RESOLVE_FAILED: "unknown tag (a value that starts with ! needs quotes)",
  UNEXPECTED_TOKEN: "unexpected text (a value that starts with | > ! * & % @ or ` needs quotes)",
}
const quotesNothing = new Set([
  "BAD_INDENT",
  "BAD_SCALAR_START",
  "BLOCK_AS_IMPLICIT_KEY",
  "DUPLICATE_KEY",
  "MISSING_CHAR",
  "MULTILINE_IMPLICIT_KEY",
  "TAB_AS_INDENT",
])

/**
 * What is wrong, never quoting the file: the library's messages quote the text they stopped at ("Unresolved tag:
 * !Sup3rS3cret"), so only those known to quote nothing pass; the rest are worded from their codes.
 */
const describe = (problem: YAMLError): string =>
  ownWords[problem.code] ??
  (quotesNothing.has(problem.code) ? problem.message : problem.code.toLowerCase().replaceAll("_", " "))

/**
 * A configuration file's YAML as plain data, or its first problem with its line and column. Never the text
 * itself, which may hold a secret (see `describe`). Warnings (an unknown tag such as `!foo`) are problems too:
 * the library would otherwise print them outside the log and go on.
 */
export const parseYamlText = (text: string): Either.Either<unknown, string> => {
  const document = parseDocument(text, { prettyErrors: false })
  const problem = document.errors[0] ?? document.warnings[0]
  if (problem !== undefined) return Either.left(`${position(text, problem.pos[0])}: ${describe(problem)}`)
  try {
    return Either.right(document.toJS())
  } catch {
    // An alias to no anchor, found only while building the value; the library's message quotes its name.
    return Either.left("an alias (*) to no anchor (a value that starts with * needs quotes)")
  }
}
