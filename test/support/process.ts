import { type ChildProcess, execFile, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { waitFor } from "./http.js"

export const picoBin = fileURLToPath(new URL("../../dist/bin/pico.js", import.meta.url))

/** A spawned process whose output is collected: JSON log lines parsed, anything else kept as text. */
export interface PicoProcess {
  readonly child: ChildProcess
  /** Every JSON log line written so far. */
  readonly logs: Array<Record<string, unknown>>
  /** Everything written to stderr/stdout that was not a JSON log line. */
  readonly text: () => string
  readonly exited: Promise<number | null>
  readonly waitForLog: (msg: string, timeoutMs?: number) => Promise<Record<string, unknown>>
  /** Peak resident set size in MiB (VmHWM), read from /proc while the process runs. */
  readonly peakRssMiB: () => number
  /** Resident set size now, in MiB (VmRSS). */
  readonly rssMiB: () => number
  readonly stop: () => Promise<number | null>
}

export interface SpawnOptions {
  /**
   * The network namespace to run in, as another host (test/support/netns.ts). `ip netns exec` execs the command
   * rather than forking it, so the child's pid is the command's own and signals reach it directly.
   */
  readonly netns?: string
  readonly cwd?: string
  /** Added to this process's environment. */
  readonly env?: Readonly<Record<string, string>>
}

/** Runs a Node script with this test's Node, collecting its JSON log lines and its other output. */
export const spawnNode = (
  script: string,
  args: ReadonlyArray<string>,
  options: SpawnOptions = {},
): PicoProcess => spawnProcess(process.execPath, [script, ...args], options)

/** Runs the built `pico` CLI the way a user would: `node dist/bin/pico.js <args>`. */
export const spawnPico = (args: ReadonlyArray<string>, options: SpawnOptions = {}): PicoProcess =>
  spawnNode(picoBin, args, options)

/** Runs any command (a helper service, nginx) with its output collected as `spawnPico` does. */
export const spawnProcess = (
  command: string,
  args: ReadonlyArray<string>,
  options: SpawnOptions = {},
): PicoProcess => {
  const argv =
    options.netns === undefined
      ? [command, ...args]
      : ["ip", "netns", "exec", options.netns, command, ...args]
  const child = spawn(argv[0] as string, argv.slice(1), {
    stdio: ["ignore", "pipe", "pipe"],
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
  })
  const logs: Array<Record<string, unknown>> = []
  let text = ""
  let partial = ""
  const onData = (chunk: Buffer) => {
    partial += chunk.toString("utf8")
    const lines = partial.split("\n")
    partial = lines.pop() ?? ""
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>)
      } catch {
        text += `${line}\n`
      }
    }
  }
  child.stdout?.on("data", onData)
  child.stderr?.on("data", onData)
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  return {
    child,
    logs,
    text: () => text + partial,
    exited,
    waitForLog: async (msg, timeoutMs = 10_000) => {
      await waitFor(`log "${msg}"`, () => logs.some((log) => log.msg === msg), timeoutMs)
      return logs.find((log) => log.msg === msg) as Record<string, unknown>
    },
    peakRssMiB: () => statusMiB(child, "VmHWM"),
    rssMiB: () => statusMiB(child, "VmRSS"),
    stop: () => {
      if (child.exitCode === null) child.kill("SIGTERM")
      return exited
    },
  }
}

/** A size field of /proc/<pid>/status, in MiB. */
const statusMiB = (child: ChildProcess, field: "VmHWM" | "VmRSS"): number => {
  const status = readFileSync(`/proc/${child.pid}/status`, "utf8")
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN) / 1024
}

/** `--<name>.bind-addr 127.0.0.1:0` for each listener named: ephemeral loopback ports, read back with listeningPort. */
export const loopbackPorts = (...names: ReadonlyArray<string>): Array<string> =>
  names.flatMap((name) => [`--${name}.bind-addr`, "127.0.0.1:0"])

/** The port a listener reported in its "<name> listening" log line. */
export const listeningPort = async (pico: PicoProcess, name: string): Promise<number> => {
  const log = await pico.waitForLog(`${name} listening`)
  return Number(String(log.addr).split(":").pop())
}

export interface PicoRun {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs a short-lived `pico` command (e.g. `pico status ...`) to completion, keeping stdout and stderr apart. */
export const runPico = (args: ReadonlyArray<string>): Promise<PicoRun> =>
  new Promise((resolve, reject) => {
    execFile(process.execPath, [picoBin, ...args], { timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : null
      if (code === null) reject(error)
      else resolve({ code, stdout, stderr })
    })
  })

/**
 * Processes and cleanups that end with each test: `pico(args, options)` spawns the CLI and `node(script, args)` any script,
 * both stopped after the test; `cleanups` take anything else to undo.
 */
export const picoPerTest = (afterEach: (fn: () => Promise<void>) => void) => {
  const processes: Array<PicoProcess> = []
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const started of processes.splice(0)) await started.stop()
    for (const cleanup of cleanups.splice(0)) await cleanup()
  })
  const node = (script: string, args: ReadonlyArray<string>, options?: SpawnOptions): PicoProcess => {
    const started = spawnNode(script, args, options)
    processes.push(started)
    return started
  }
  const pico = (args: ReadonlyArray<string>, options?: SpawnOptions): PicoProcess =>
    node(picoBin, args, options)
  return { pico, node, cleanups }
}
