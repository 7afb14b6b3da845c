import { type ChildProcessWithoutNullStreams, execFile, execFileSync, spawn } from "node:child_process"
import {
  chmodSync,
  chownSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs"
import { tmpdir, userInfo } from "node:os"
import { join } from "node:path"
import { accepts, closedPort, waitFor } from "./http.js"
import { type PicoProcess, spawnProcess } from "./process.js"

/**
 * Real TCP services for the TCP endpoint tests: PostgreSQL, OpenSSH's sshd and Redis, each on its own port on
 * 127.0.0.1 with its state in a temporary directory. .ci/run installs them (Debian's postgresql, openssh-server
 * and openssh-client, redis-server and redis-tools) when missing.
 */

export interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs a command to completion with `input` on its stdin, keeping stdout and stderr apart. */
export const run = (
  command: string,
  args: ReadonlyArray<string>,
  options: {
    readonly input?: string | Buffer
    readonly env?: Record<string, string>
    readonly timeoutMs?: number
  } = {},
): Promise<Run> =>
  new Promise((resolve) => {
    const child = execFile(
      command,
      args,
      {
        encoding: "buffer",
        maxBuffer: 512 * 1024 * 1024,
        timeout: options.timeoutMs ?? 120_000,
        env: { ...process.env, ...options.env },
      },
      (error, stdout, stderr) =>
        resolve({
          code: error === null ? 0 : typeof error.code === "number" ? error.code : null,
          stdout: stdout.toString("latin1"),
          stderr: stderr.toString("utf8"),
        }),
    )
    child.stdin?.end(options.input)
  })

/** A directory for a service's state, removed with `remove`. */
const workDirectory = (name: string) => {
  const path = mkdtempSync(join(tmpdir(), `pico-${name}-`))
  return { path, remove: async () => rmSync(path, { recursive: true, force: true }) }
}

export interface Service {
  readonly port: number
  readonly process: PicoProcess
  readonly stop: () => Promise<void>
}

// --- PostgreSQL ---

/** Debian keeps the server's programs out of PATH, in /usr/lib/postgresql/<version>/bin. */
const postgresBin = (program: string): string => {
  const versions = readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a))
  return join("/usr/lib/postgresql", versions[0] as string, "bin", program)
}

/**
 * PostgreSQL refuses to run as root, so root runs it as the `postgres` user Debian's package creates; `setpriv`
 * execs rather than forks, so the spawned process is the server itself and a signal reaches it.
 */
const asPostgres = (program: string, args: ReadonlyArray<string>): [string, Array<string>] =>
  userInfo().uid === 0
    ? [
        "setpriv",
        ["--reuid=postgres", "--regid=postgres", "--clear-groups", "--", postgresBin(program), ...args],
      ]
    : [postgresBin(program), [...args]]

/** A PostgreSQL server on a fresh data directory (initdb), trusting local connections as user `postgres`. */
export const startPostgres = async (): Promise<Service> => {
  const dir = workDirectory("postgres")
  const data = join(dir.path, "data")
  if (userInfo().uid === 0) chownSync(dir.path, ...postgresIds())
  const [initdb, initArgs] = asPostgres("initdb", [
    "-D",
    data,
    "-U",
    "postgres",
    "--auth=trust",
    "-E",
    "UTF8",
  ])
  const init = await run(initdb, initArgs)
  if (init.code !== 0) throw new Error(`initdb failed: ${init.stderr}`)
  const port = await closedPort()
  const [postgres, args] = asPostgres("postgres", [
    ...["-D", data, "-p", String(port), "-k", dir.path],
    ...["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"],
  ])
  const server = spawnProcess(postgres, args)
  await waitFor("postgres accepting connections", () => accepts(port), 30_000)
  return {
    port,
    process: server,
    stop: async () => {
      // SIGINT is PostgreSQL's fast shutdown: it disconnects clients instead of waiting for them.
      if (server.child.exitCode === null) server.child.kill("SIGINT")
      await server.exited
      await dir.remove()
    },
  }
}

const postgresIds = (): [number, number] => [
  Number(execFileSync("id", ["-u", "postgres"]).toString()),
  Number(execFileSync("id", ["-g", "postgres"]).toString()),
]

/** psql as a client of the given port, user postgres, stopping at the first error. */
export const psqlArgs = (port: number, ...args: Array<string>): Array<string> => [
  ...["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-X", "-q", "-v", "ON_ERROR_STOP=1"],
  ...args,
]

/**
 * A psql session kept open on its stdin, to which a test sends one query at a time. `query` resolves with the
 * answer's one line, or undefined once psql has lost its connection (and exited, with status 2).
 */
export const psqlSession = (port: number) => {
  const child: ChildProcessWithoutNullStreams = spawn("psql", psqlArgs(port, "-At"))
  let output = ""
  let waiting: ((line: string | undefined) => void) | undefined
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString()
    const newline = output.indexOf("\n")
    if (newline < 0) return
    const line = output.slice(0, newline)
    output = output.slice(newline + 1)
    waiting?.(line)
  })
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  void exited.then(() => waiting?.(undefined))
  return {
    query: (sql: string): Promise<string | undefined> =>
      child.exitCode !== null
        ? Promise.resolve(undefined)
        : new Promise((resolve) => {
            waiting = resolve
            child.stdin.write(`${sql};\n`)
          }),
    exited,
    close: () => void child.kill(),
  }
}

// --- OpenSSH ---

export interface Sshd extends Service {
  /** `ssh` arguments that log in as this user with the throwaway key, to `port` (e.g. a forwarded one). */
  readonly sshArgs: (port: number) => Array<string>
  /** A directory the session's commands may write to. */
  readonly scratch: string
}

/** An sshd with its own config, host key and a throwaway client key authorized for the current user. */
export const startSshd = async (): Promise<Sshd> => {
  const dir = workDirectory("sshd")
  const key = (name: string) => {
    const path = join(dir.path, name)
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path])
    return path
  }
  const hostKey = key("host_ed25519")
  const clientKey = key("client_ed25519")
  const authorizedKeys = join(dir.path, "authorized_keys")
  copyFileSync(`${clientKey}.pub`, authorizedKeys)
  chmodSync(authorizedKeys, 0o600)
  const port = await closedPort()
  const config = join(dir.path, "sshd_config")
  writeFileSync(
    config,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      `PidFile ${join(dir.path, "sshd.pid")}`,
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "PermitRootLogin prohibit-password",
      "StrictModes no",
      "LogLevel ERROR",
      "",
    ].join("\n"),
  )
  // sshd's privilege separation needs this directory, which the service's init script would make.
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 })
  const sshd = spawnProcess("/usr/sbin/sshd", ["-D", "-e", "-f", config])
  await waitFor("sshd accepting connections", () => accepts(port))
  const scratch = join(dir.path, "scratch")
  mkdirSync(scratch)
  return {
    port,
    process: sshd,
    scratch,
    sshArgs: (to) => [
      ...["-F", "/dev/null", "-i", clientKey, "-p", String(to)],
      ...["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"],
      ...["-o", "LogLevel=ERROR", `${userInfo().username}@127.0.0.1`],
    ],
    stop: async () => {
      await sshd.stop()
      await dir.remove()
    },
  }
}

// --- Redis ---

/** A redis-server with no persistence. */
export const startRedis = async (): Promise<Service> => {
  const dir = workDirectory("redis")
  const port = await closedPort()
  const redis = spawnProcess("redis-server", [
    ...["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    ...["--dir", dir.path, "--maxclients", "4000"],
  ])
  await waitFor("redis accepting connections", () => accepts(port))
  return {
    port,
    process: redis,
    stop: async () => {
      await redis.stop()
      await dir.remove()
    },
  }
}
