import { locate } from "./Cli/Argv.js"
import { pico } from "./Cli/Commands.js"
import { completionScript } from "./Cli/Completions.js"
import { renderHelp, wantsColor } from "./Cli/Help.js"

/** Help stays readable in an 80-column terminal. */
const HELP_WIDTH = 80

/**
 * `pico ...`: `--help`, `--version` and mistakes in the command line are answered here, without loading any
 * command's code; everything else is parsed by @effect/cli and runs the command it names. `argv` is the whole
 * `process.argv`.
 */
export const main = (argv: ReadonlyArray<string>, version: string): void => {
  const request = locate(pico, argv.slice(2))
  switch (request._tag) {
    case "Help":
      process.stdout.write(
        renderHelp(request.path, { width: HELP_WIDTH, color: wantsColor(process.stdout.isTTY, process.env) }),
      )
      return
    case "Version":
      process.stdout.write(`${version}\n`)
      return
    case "Completions":
      process.stdout.write(completionScript(pico, request.shell))
      return
    case "Invalid":
      process.stderr.write(`${request.message}\n`)
      process.exitCode = 1
      return
    case "Run":
      void import("./Cli/Dispatch.js").then(({ dispatch }) =>
        dispatch(pico, [...argv.slice(0, 2), ...request.args], version),
      )
  }
}
