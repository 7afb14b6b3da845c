import { execFile } from "node:child_process"
import { once } from "node:events"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"
import { pico } from "../../src/Cli/Commands.js"
import { type CommandSpec, commandName, flagsOf } from "../../src/Cli/Spec.js"
import { picoBin, runPico } from "../support/process.js"

const packageJson = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  readonly version: string
}

/** Every command, groups included: ["pico"], ["pico", "server"], ..., ["pico", "status", "cluster", "node"]. */
const commandPaths = (path: ReadonlyArray<CommandSpec>): Array<ReadonlyArray<CommandSpec>> => [
  path,
  ...((path[path.length - 1] as CommandSpec).subcommands ?? []).flatMap((child) =>
    commandPaths([...path, child]),
  ),
]

/** The help text of one flag: its line and the description lines indented under or beside it. */
const flagEntry = (help: string, flag: string): string => {
  const lines = help.split("\n")
  const start = lines.findIndex((line) => line.startsWith(`  ${flag} `) || line === `  ${flag}`)
  if (start < 0) return ""
  const end = lines.findIndex((line, index) => index > start && !line.startsWith("      "))
  return lines.slice(start, end).join(" ").replace(/\s+/g, " ")
}

/** Runs `command` in a pseudo-terminal (util-linux `script`), as when someone types it. */
const inTerminal = async (command: string, env: Record<string, string> = {}) =>
  (
    await promisify(execFile)("script", ["-qec", command, "/dev/null"], {
      env: { ...process.env, NO_COLOR: "", ...env },
    })
  ).stdout

describe("pico --help", () => {
  for (const path of commandPaths([pico])) {
    const args = path.slice(1).map((command) => command.name)
    it(`${commandName(path)} --help: every flag with its default, in 80 columns, no escape codes in a pipe`, async () => {
      const { code, stdout, stderr } = await runPico([...args, "--help"])
      expect([code, stderr]).toEqual([0, ""])
      expect(stdout).not.toContain("\x1b")
      for (const line of stdout.split("\n")) expect(line.length, line).toBeLessThanOrEqual(80)
      const command = path[path.length - 1] as CommandSpec
      const usageArgs = (command.args ?? []).map((arg) => ` <${arg.name}>`).join("")
      expect(stdout).toMatch(
        new RegExp(
          `^Usage: ${commandName(path)}${command.subcommands ? " <command>" : ""}${usageArgs} \\[flags\\]\n`,
        ),
      )
      for (const { name, setting } of flagsOf(path)) {
        const entry = flagEntry(stdout, name)
        expect(entry, `${name} is missing`).not.toBe("")
        // "(default 15s)", or "(repeatable; default a, b)".
        if (setting.defaultText !== "")
          expect(entry).toMatch(
            new RegExp(`[(;] ?default ${setting.defaultText.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\)`),
          )
        if (setting.repeated) expect(entry).toContain("(repeatable")
      }
      for (const child of command.subcommands ?? []) expect(stdout).toContain(`  ${child.name}`)
      // No filler from the parser's own help, and none of its flags that Pico does not offer.
      for (const absent of [
        "A user-defined piece of text",
        "This setting is optional",
        "--log-level",
        "--wizard",
      ])
        expect(stdout).not.toContain(absent)
    })
  }

  it("lists the commands and the top-level flags when pico runs alone", async () => {
    const [alone, help] = await Promise.all([runPico([]), runPico(["--help"])])
    expect(alone).toEqual(help)
    for (const line of [
      "  server ",
      "  status cluster node <node-id> ",
      "  dev cluster ",
      "  --version",
      "  --completions shell",
    ])
      expect(help.stdout).toContain(line)
  })

  it("makes headings bold in a terminal, unless NO_COLOR is set", async () => {
    const command = `${process.execPath} ${picoBin} status --help`
    expect(await inTerminal(command)).toContain("\x1b[1mUsage:\x1b[22m pico status <command> [flags]")
    expect(await inTerminal(command, { NO_COLOR: "1" })).not.toContain("\x1b")
  })

  it("prints the version", async () => {
    expect(await runPico(["--version"])).toMatchObject({
      code: 0,
      stdout: `${packageJson.version}\n`,
    })
  })

  /** The script for `shell`, saved where the shell can source it. */
  const completionScript = async (shell: string) => {
    const { code, stdout } = await runPico(["--completions", shell])
    expect(code).toBe(0)
    const file = join(mkdtempSync(join(tmpdir(), "pico-completions-")), `pico.${shell}`)
    writeFileSync(file, stdout)
    return file
  }
  /** The candidates bash (or zsh, through bashcompinit) offers after `words`, the last being the one typed. */
  const bashLike = async (shell: "bash" | "zsh", file: string, words: ReadonlyArray<string>) => {
    const quoted = words.map((word) => `'${word}'`).join(" ")
    const setup = shell === "zsh" ? "autoload -U +X compinit && compinit -u -D; " : ""
    const { stdout } = await promisify(execFile)(shell, [
      "-c",
      `${setup}source ${file}; COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _pico_completions; ` +
        'printf "%s\\n" "${COMPREPLY[@]}"',
    ])
    return stdout.split("\n").filter(Boolean)
  }

  it("prints a bash completion script that completes commands at any depth, their flags and flags' values", async () => {
    const file = await completionScript("bash")
    const complete = (words: ReadonlyArray<string>) => bashLike("bash", file, words)
    expect(await complete(["pico", "status", "clu"])).toEqual(["cluster"])
    expect(await complete(["pico", "status", "cluster", "n"])).toEqual(["nodes", "node"])
    expect(await complete(["pico", "forward", "tcp", "--e"])).toEqual(["--endpoint"])
    expect(await complete(["pico", "server", "--gossip.bind"])).toEqual(["--gossip.bind-addr"])
    // A parent's flags, after the command they belong to; a flag's value is skipped on the way.
    expect(await complete(["pico", "status", "cluster", "nodes", "--out"])).toEqual(["--output"])
    expect(await complete(["pico", "status", "--output", "json", "cluster", "no"])).toEqual(["nodes", "node"])
    expect(await complete(["pico", "status", "--output", ""])).toEqual(["yaml", "json"])
    expect(await complete(["pico", "server", "--config.path", file.slice(0, -3)])).toEqual([file])
    // A file name with a space is one candidate.
    const spaced = join(dirname(file), "my settings.yaml")
    writeFileSync(spaced, "")
    expect(await complete(["pico", "server", "--config.path", join(dirname(file), "my")])).toEqual([spaced])
    expect(await complete(["pico", "server", "--proxy.bind-addr", ""])).toEqual([])
    // bash splits --flag=value at the "=".
    expect(await complete(["pico", "status", "--output", "=", ""])).toEqual(["yaml", "json"])
    expect(await complete(["pico", "status", "--output", "=", "j"])).toEqual(["json"])
    // A true/false setting given alone is on: what follows is completed as any word there.
    expect(await complete(["pico", "server", "--access-log.query", "--log.l"])).toEqual(["--log.level"])
    // Only what pico takes: no --wizard or --log-level, which it refuses.
    expect(await complete(["pico", "--"])).toEqual(["--help", "--version", "--completions"])
    expect(await complete(["pico", "agent", "--h"])).toEqual(["--help"])
  })

  it("prints a zsh completion script, through zsh's bash completion support", async () => {
    const file = await completionScript("zsh")
    // zsh matches the candidates against what is typed itself: the script offers the command's words.
    const offered = await bashLike("zsh", file, ["pico", "status", "cluster", "n"])
    expect(offered).toEqual(expect.arrayContaining(["nodes", "node", "--output", "--help"]))
    expect(offered).not.toContain("server")
    expect(await bashLike("zsh", file, ["pico", "status", "--output", ""])).toEqual(["yaml", "json"])
  })

  it("prints a fish completion script that completes commands at any depth, their flags and flags' values", async () => {
    const file = await completionScript("fish")
    const complete = async (line: string) => {
      const { stdout } = await promisify(execFile)("fish", ["-c", `source ${file}; complete -C '${line}'`])
      return stdout.trim().split("\n").filter(Boolean).sort()
    }
    expect(await complete("pico status cluster n")).toEqual(["node", "nodes"])
    expect(await complete("pico forward tcp --e")).toEqual(["--endpoint"])
    expect(await complete("pico status --output json cluster no")).toEqual(["node", "nodes"])
    expect(await complete("pico status --output ")).toEqual(["json", "yaml"])
    expect(await complete(`pico server --config.path ${file.slice(0, -3)}`)).toEqual([file])
    expect(await complete("pico --")).toEqual(["--completions", "--help", "--version"])
  })
})

describe("true/false settings", () => {
  it("are on when given alone, at the end or before another flag, and take true or false", async () => {
    // The server logs its settings, then stops at once on a proxy port that is taken.
    const taken = net.createServer().listen(0, "127.0.0.1")
    await once(taken, "listening")
    const port = (taken.address() as net.AddressInfo).port
    const accessLogOf = async (...flags: ReadonlyArray<string>) => {
      const { code, stderr } = await runPico(["server", "--proxy.bind-addr", `127.0.0.1:${port}`, ...flags])
      expect(code).toBe(1)
      const start = stderr
        .split("\n")
        .map((line) => (line.startsWith("{") ? JSON.parse(line) : {}))
        .find((log) => log.msg === "starting pico server")
      return start?.config.access_log
    }
    try {
      expect(await accessLogOf("--access-log.query")).toMatchObject({ query: true, enabled: true })
      expect(await accessLogOf("--access-log.query", "--access-log.enabled", "false")).toMatchObject({
        query: true,
        enabled: false,
      })
      expect(await accessLogOf("--access-log.query", "false")).toMatchObject({ query: false })
    } finally {
      taken.close()
    }
  })
})

describe("mistakes on the command line", () => {
  const configFile = (yaml: string) => {
    const path = join(mkdtempSync(join(tmpdir(), "pico-cli-")), "pico.yaml")
    writeFileSync(path, yaml)
    return path
  }
  const badSection = configFile("proxy: 5\n")
  const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
    [
      ["status", "clustr", "nodes"],
      'pico status: unknown command "clustr" (did you mean cluster?); commands: proxy, cluster, gossip',
    ],
    [
      ["status", "cluster", "nods"],
      'pico status cluster: unknown command "nods" (did you mean nodes?); commands: nodes, node',
    ],
    [
      ["bogus"],
      'pico: unknown command "bogus"; commands: server, agent, forward, status, capture, replay, dev',
    ],
    [
      ["status", "cluster", "nodes", "--output", "xml"],
      'invalid config: --output: invalid value "xml": expected one of yaml, json',
    ],
    // status's flags go anywhere after status: between the group and its command, and before an argument too.
    [
      ["status", "--output", "xml", "cluster", "nodes"],
      'invalid config: --output: invalid value "xml": expected one of yaml, json',
    ],
    [
      ["status", "cluster", "--output", "xml", "nodes"],
      'invalid config: --output: invalid value "xml": expected one of yaml, json',
    ],
    [
      ["status", "cluster", "node", "--output", "xml", "local"],
      'invalid config: --output: invalid value "xml": expected one of yaml, json',
    ],
    [
      ["capture", "start", "--timeout", "5x", "echo"],
      'invalid config: --timeout: invalid value "5x": expected a duration such as 500ms, 15s or 1m',
    ],
    [
      ["dev", "cluster", "--nodes", "abc"],
      'invalid config: --nodes: invalid value "abc": expected a whole number',
    ],
    [
      ["server", "--config.path", "/nonexistent/pico.yaml"],
      "invalid config: --config.path /nonexistent/pico.yaml: no such file",
    ],
    [
      ["server", "--config.path", badSection],
      `invalid config: proxy in ${badSection}: invalid value 5: expected a mapping of settings (bind_addr, gateway_timeout, ...)`,
    ],
    [["server", "--log-level", "debug"], "pico server: unknown flag --log-level (did you mean --log.level?)"],
    [
      ["server", "--proxy.bind-adr", ":8000"],
      "pico server: unknown flag --proxy.bind-adr (did you mean --proxy.bind-addr?)",
    ],
    [["--wizard"], "pico: unknown flag --wizard"],
    [["server", "--proxy.bind-addr"], "pico server: --proxy.bind-addr needs a value"],
    [["server", "--proxy.bind-addr="], "pico server: --proxy.bind-addr needs a value"],
    [
      ["server", "--proxy.gateway-timeout", "--proxy.bind-addr", ":8000"],
      "pico server: --proxy.gateway-timeout needs a value before --proxy.bind-addr",
    ],
    // A subcommand's flag, not known yet where it stands, is no value either.
    [
      ["status", "--server.url", "--follow", "proxy", "requests", "ep"],
      "pico status: --server.url needs a value before --follow",
    ],
    [
      ["status", "cluster", "nodes", "--forward", "--output=json"],
      "pico status cluster nodes: --forward needs a value before --output=json",
    ],
    [
      ["status", "cluster", "nodes", "--output", "json", "--output", "yaml"],
      "pico status cluster nodes: --output given twice",
    ],
    // A misspelt subsystem, or one of another program, would silently show nothing more.
    [
      ["agent", "--log.subsystems", "agent,tunel"],
      'invalid config: --log.subsystems: invalid value ["agent,tunel"]: "tunel": unknown subsystem "tunel"; this program logs under main, agent, tunnel, admin',
    ],
    [
      ["forward", "tcp", "--endpoint", "db", "--log.subsystems", "proxy"],
      'invalid config: --log.subsystems: invalid value ["proxy"]: "proxy": unknown subsystem "proxy"; this program logs under main, forward',
    ],
    [
      ["server", "--log.subsystems", "agent"],
      'invalid config: --log.subsystems: invalid value ["agent"]: "agent": unknown subsystem "agent"; this program logs under main, server, cluster, gossip, proxy, upstream, admin, tunnel',
    ],
    [["--completions", "tcsh"], 'pico: --completions: unknown shell "tcsh"; one of bash, fish, zsh'],
    [["status", "cluster", "node"], "pico status cluster node: missing <node-id>"],
    [
      ["status", "cluster", "nodes", "--auth.token", "file:/nonexistent/token"],
      "invalid config: --auth.token: cannot read /nonexistent/token: no such file",
    ],
    [["status", "cluster", "nodes", "extra"], 'pico status cluster nodes: unexpected argument "extra"'],
    [["forward", "tcp"], "invalid config: --endpoint: required, e.g. --endpoint db"],
    [
      ["forward", "tcp", "--endpoint", "db", "--local.bind-addr", "15432"],
      'invalid config: --local.bind-addr: invalid value "15432": expected an address such as ":8000" or "127.0.0.1:8000"',
    ],
    [
      ["forward", "tcp", "--endpoint", "no spaces"],
      'invalid config: --endpoint: invalid value "no spaces": endpoint id must be 1-128 characters of A-Z a-z 0-9 . _ ~ -, not . or .. alone',
    ],
  ]
  for (const [args, message] of cases) {
    it(`pico ${args.join(" ")}`, async () => {
      expect(await runPico(args)).toEqual({ code: 1, stdout: "", stderr: `${message}\n` })
    })
  }
})
