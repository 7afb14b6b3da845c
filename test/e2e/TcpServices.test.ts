import { createHash, randomBytes } from "node:crypto"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { forwardArgs, forwardedPort } from "../support/forward.js"
import { rawExchange, request, waitFor } from "../support/http.js"
import { listeningPort, type PicoProcess, spawnPico } from "../support/process.js"
import {
  psqlArgs,
  psqlSession,
  run,
  type Service,
  type Sshd,
  startPostgres,
  startRedis,
  startSshd,
} from "../support/services.js"
import { closing, connectLocal, rawHandshake, tcpHandshake } from "../support/tcp.js"

/**
 * Real TCP services behind `pico agent`, reached with their own clients through `pico forward tcp`: every process
 * is the real program (pico server, pico agent, pico forward; PostgreSQL, sshd, Redis and their clients).
 */

const processes: Array<PicoProcess> = []
let server: PicoProcess
let agent: PicoProcess
let proxyPort: number
let adminPort: number
const services: Array<Service> = []
let postgres: Service
let sshd: Sshd
let redis: Service
/** The `pico forward tcp` processes, and the local ports they listen on, by endpoint. */
const forwards: Record<string, PicoProcess> = {}
const forwarded: Record<string, number> = {}

beforeAll(async () => {
  ;[postgres, sshd, redis] = await Promise.all([startPostgres(), startSshd(), startRedis()])
  services.push(postgres, sshd, redis)
  server = spawnPico([
    "server",
    ...["--proxy.bind-addr", "127.0.0.1:0", "--upstream.bind-addr", "127.0.0.1:0"],
    ...["--admin.bind-addr", "127.0.0.1:0", "--gossip.bind-addr", "127.0.0.1:0"],
    ...["--server.graceful-shutdown-timeout", "1s", "--proxy.read-header-timeout", "1s"],
  ])
  processes.push(server)
  proxyPort = await listeningPort(server, "proxy")
  adminPort = await listeningPort(server, "admin")
  const proxyUrl = `http://127.0.0.1:${proxyPort}`
  agent = spawnPico([
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
    forwards[endpoint] = forward
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

/** The open TCP connections the server counts for an endpoint. */
const openConnections = async (endpointId: string): Promise<number> =>
  JSON.parse((await request(`http://127.0.0.1:${adminPort}/status/proxy/tcp`)).body)[endpointId].connections

describe("bad input through TCP endpoints: each affects only its own connection, with bounded memory", () => {
  /** A psql session open throughout, which must answer after each kind of trouble. */
  let bystander: ReturnType<typeof psqlSession>
  beforeAll(async () => {
    bystander = psqlSession(forwarded.db as number)
    expect(await bystander.query("SELECT 'ready'")).toBe("ready")
  })
  afterAll(() => bystander.close())
  const bystanderAnswers = async () => expect(await bystander.query("SELECT 'still here'")).toBe("still here")

  it("garbage after the handshake reaches PostgreSQL as bytes, and it drops that connection only", async () => {
    const { answer, socket } = await rawHandshake(proxyPort, tcpHandshake("db"))
    expect(answer).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/)
    const ended = closing(socket)
    socket.write(randomBytes(64 * 1024))
    // PostgreSQL hangs up with most of the garbage unread, so its kernel resets the connection; the reset reaches
    // the client as a reset.
    expect(await ended).toBe("ECONNRESET")
    await bystanderAnswers()
  })

  it("a client that connects and never sends: the proxy port answers 408; through pico forward it waits alone", async () => {
    const silent = await rawExchange(proxyPort, "", 10_000)
    expect(silent).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n[\s\S]*\{"error":"request header timeout"\}$/)
    const before = await openConnections("db")
    const idle = await connectLocal(forwarded.db as number)
    await waitFor("the idle connection carried", async () => (await openConnections("db")) === before + 1)
    await bystanderAnswers()
    idle.destroy()
    await waitFor("the idle connection gone", async () => (await openConnections("db")) === before)
  })

  it("1,000 idle connections through pico forward are each carried; others are served; memory stays bounded", async () => {
    const processes = [server, agent, forwards.redis as PicoProcess]
    const rssBefore = processes.map((process) => process.rssMiB())
    const idle = await Promise.all(
      Array.from({ length: 1000 }, () => connectLocal(forwarded.redis as number)),
    )
    await waitFor("1,000 connections carried", async () => (await openConnections("redis")) === 1000, 30_000)
    const clients = await run("redis-cli", [
      "-h",
      "127.0.0.1",
      "-p",
      String(forwarded.redis),
      "INFO",
      "clients",
    ])
    expect(Number(/connected_clients:(\d+)/.exec(clients.stdout)?.[1])).toBeGreaterThanOrEqual(1001)
    await bystanderAnswers()
    // What the idle connections cost each process: measured 2026-11-30, 2-32 MiB (about 30 KiB a connection
    // at most, Node 20 and 24 alike). A 64 KiB read buffer or a window's worth per connection would add 62 MiB
    // or more. The process's peak would not do: it holds whatever the bulk transfers of the tests before left.
    for (const [index, process] of processes.entries())
      expect(process.rssMiB() - (rssBefore[index] as number)).toBeLessThan(60)
    for (const socket of idle) socket.destroy()
    await waitFor("the idle connections gone", async () => (await openConnections("redis")) === 0, 30_000)
  })

  it("a service that drops a connection mid-query ends that connection only", async () => {
    const victim = psqlSession(forwarded.db as number)
    const pid = await victim.query("SELECT pg_backend_pid()")
    const sleeping = victim.query("SELECT pg_sleep(60)")
    const killer = await run(
      "psql",
      psqlArgs(forwarded.db as number, "-At", "-c", `SELECT pg_terminate_backend(${pid})`),
    )
    expect(killer.stdout).toBe("t\n")
    expect(await sleeping).toBeUndefined()
    expect(await victim.exited).toBe(2)
    await bystanderAnswers()
  })
})
