import { createHash } from "node:crypto"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { forwardArgs, forwardedPort } from "../support/forward.js"
import { listeningPort, type PicoProcess, spawnPico } from "../support/process.js"
import {
  psqlArgs,
  run,
  type Service,
  type Sshd,
  startPostgres,
  startRedis,
  startSshd,
} from "../support/services.js"

/**
 * Real TCP services behind `pico agent`, reached with their own clients through `pico forward tcp`: every process
 * is the real program (pico server, pico agent, pico forward; PostgreSQL, sshd, Redis and their clients).
 */

const processes: Array<PicoProcess> = []
const services: Array<Service> = []
let postgres: Service
let sshd: Sshd
let redis: Service
/** The local ports `pico forward tcp` listens on, by endpoint. */
const forwarded: Record<string, number> = {}

beforeAll(async () => {
  ;[postgres, sshd, redis] = await Promise.all([startPostgres(), startSshd(), startRedis()])
  services.push(postgres, sshd, redis)
  const server = spawnPico([
    "server",
    ...["--proxy.bind-addr", "127.0.0.1:0", "--upstream.bind-addr", "127.0.0.1:0"],
    ...["--admin.bind-addr", "127.0.0.1:0", "--gossip.bind-addr", "127.0.0.1:0"],
    ...["--server.graceful-shutdown-timeout", "1s"],
  ])
  processes.push(server)
  const proxyUrl = `http://127.0.0.1:${await listeningPort(server, "proxy")}`
  const agent = spawnPico([
    "agent",
    "--endpoints",
    [
      `db/tcp://127.0.0.1:${postgres.port}`,
      `ssh/tcp://127.0.0.1:${sshd.port}`,
      `redis/tcp://127.0.0.1:${redis.port}`,
    ].join(","),
    ...["--server.url", `http://127.0.0.1:${await listeningPort(server, "upstream")}`],
  ])
  processes.push(agent)
  for (let connected = 0; connected < 3; connected++) await agent.waitForLog("connected")
  for (const endpoint of ["db", "ssh", "redis"]) {
    const forward = spawnPico(forwardArgs(endpoint, proxyUrl))
    processes.push(forward)
    forwarded[endpoint] = await forwardedPort(forward)
  }
}, 120_000)

afterAll(async () => {
  for (const started of processes.reverse()) await started.stop()
  for (const service of services) await service.stop()
})

const sha256 = (bytes: Buffer | string): string => createHash("sha256").update(bytes).digest("hex")

describe("TCP endpoints with real programs, through pico forward tcp", () => {
  it("PostgreSQL: psql creates a table, COPYs 100,000 rows in and reads them back; pgbench runs", async () => {
    const psql = (sql: string, input?: string) =>
      run("psql", psqlArgs(forwarded.db as number, "-At", "-c", sql), input === undefined ? {} : { input })
    expect(await psql("CREATE TABLE rows (id integer PRIMARY KEY, name text NOT NULL)")).toMatchObject({
      code: 0,
    })
    let rows = ""
    for (let id = 1; id <= 100_000; id++) rows += `${id}\trow number ${id}\n`
    expect(await psql("COPY rows FROM STDIN", rows)).toMatchObject({ code: 0, stderr: "" })
    const copied = await psql("COPY rows TO STDOUT")
    expect(copied.code).toBe(0)
    expect(sha256(copied.stdout)).toBe(sha256(rows))
    const summary = await psql("SELECT count(*), sum(id) FROM rows")
    expect(summary.stdout.trim()).toBe("100000|5000050000")

    // Many short connections at once: each pgbench client is its own TCP connection through the tunnel.
    const pgbench = (...args: Array<string>) =>
      run("pgbench", ["-h", "127.0.0.1", "-p", String(forwarded.db), "-U", "postgres", ...args, "postgres"])
    const init = await pgbench("-i", "-q", "-s", "1")
    expect(init.code, init.stderr).toBe(0)
    const bench = await pgbench("-c", "4", "-t", "50", "-n")
    expect(bench.code, bench.stderr).toBe(0)
    expect(bench.stdout).toMatch(/number of transactions actually processed: 200\/200/)
  })

  it("SSH: runs a command and copies 100 MiB each way, byte-exact", async () => {
    const ssh = (command: string, input?: Buffer) =>
      run("ssh", [...sshd.sshArgs(forwarded.ssh as number), command], input === undefined ? {} : { input })
    const hello = await ssh("echo hello from $(hostname) && uname -s")
    expect(hello.code, hello.stderr).toBe(0)
    expect(hello.stdout).toMatch(/^hello from \S+\nLinux\n$/)

    const upload = Buffer.alloc(100 * 1024 * 1024)
    for (let offset = 0; offset < upload.length; offset += 4)
      upload.writeUInt32LE((offset * 2654435761) >>> 0, offset)
    const remote = join(sshd.scratch, "up.bin")
    expect((await ssh(`cat > ${remote}`, upload)).code).toBe(0)
    expect(sha256(readFileSync(remote))).toBe(sha256(upload))

    const source = join(sshd.scratch, "down.bin")
    const download = Buffer.from(upload).reverse()
    writeFileSync(source, download)
    const fetched = await ssh(`cat ${source}`)
    expect(fetched.code).toBe(0)
    expect(sha256(Buffer.from(fetched.stdout, "latin1"))).toBe(sha256(download))
  })

  it("Redis: redis-cli works, and redis-benchmark's small-message load runs through the tunnel", async () => {
    const cli = (...args: Array<string>) =>
      run("redis-cli", ["-h", "127.0.0.1", "-p", String(forwarded.redis), ...args])
    expect((await cli("PING")).stdout).toBe("PONG\n")
    expect((await cli("SET", "greeting", "through pico")).stdout).toBe("OK\n")
    expect((await cli("GET", "greeting")).stdout).toBe("through pico\n")
    const bench = await run("redis-benchmark", [
      ...[
        "-h",
        "127.0.0.1",
        "-p",
        String(forwarded.redis),
        "-q",
        "-n",
        "5000",
        "-c",
        "20",
        "-t",
        "ping,set,get,lpush",
      ],
    ])
    expect(bench.code, bench.stderr).toBe(0)
    for (const test of ["PING_INLINE", "PING_MBULK", "SET", "GET", "LPUSH"])
      expect(bench.stdout).toMatch(new RegExp(`${test}: [\\d.]+ requests per second`))
  })
})
