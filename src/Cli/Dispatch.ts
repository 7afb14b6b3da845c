import { Args, Command } from "@effect/cli"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Array as Arr, Effect } from "effect"
import { settingsOptions } from "../PicoConfig/Flags.js"
import type { CommandSpec } from "./Spec.js"

/** What the parser hands each command: the flags given (by name) and the positional arguments. */
interface Parsed {
  readonly flags: Record<string, unknown>
  readonly args: ReadonlyArray<string>
}

/** A parsed command, as its children see it: yielding it gives its own flags. */
type Parent = Effect.Effect<Parsed, never, unknown>

const positional = (spec: CommandSpec): Args.Args<ReadonlyArray<string>> =>
  Args.all(
    (spec.args ?? []).map((arg) => Args.text({ name: arg.name }).pipe(Args.withDescription(arg.description))),
  )

/**
 * The @effect/cli command for a spec and its subcommands. A leaf merges its parents' flags under its own, loads
 * its code and runs it.
 */
const toCommand = (
  spec: CommandSpec,
  parents: ReadonlyArray<Parent>,
  version: string,
): Command.Command<string, never, unknown, unknown> => {
  const command = Command.make(spec.name, {
    flags: settingsOptions(spec.settings ?? {}),
    args: positional(spec),
  })
  const children = (spec.subcommands ?? []).map((child) =>
    toCommand(child, [...parents, command as Parent], version),
  )
  if (Arr.isNonEmptyReadonlyArray(children))
    return command.pipe(Command.withSubcommands(children)) as Command.Command<string, never, unknown, unknown>
  const load = spec.load
  if (load === undefined) throw new Error(`pico ${spec.name}: a command needs subcommands or code to run`)
  return command.pipe(
    Command.withHandler(({ flags, args }) =>
      Effect.gen(function* () {
        const inherited = yield* Effect.all(parents)
        const run = yield* Effect.promise(load)
        yield* run({
          flags: Object.assign({}, ...inherited.map((parent) => parent.flags), flags),
          args,
          version,
        })
      }),
    ),
  ) as Command.Command<string, never, unknown, unknown>
}

/**
 * Parses the command line with @effect/cli and runs the chosen command until it ends; a failure exits 1. Each
 * command prints its own errors, so the runtime reports none.
 */
export const dispatch = (root: CommandSpec, argv: ReadonlyArray<string>, version: string): void =>
  Command.run(toCommand(root, [], version), { name: root.name, version })(argv).pipe(
    Effect.provide(NodeContext.layer),
    NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true }),
  )
