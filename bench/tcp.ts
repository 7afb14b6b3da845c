// The TCP benchmark (`npm run bench`; alone: `npx vitest run --config bench/vitest.config.ts`). It runs under
// vitest only to reuse the tests' helpers for real services (test/support/); it asserts nothing, and prints and
// saves what it measured (bench/.work/tcp.txt, tcp.json). See bench/README.md.
//
// The same client and service programs (bench/tcp-peer.mjs, each its own process) talk over seven paths, in
// the same run and interleaved, case by case:
//   direct     client -> service
//   ssh -L     client -> ssh (local forward) => sshd -> service              (OpenSSH, its default cipher)
//   pico tcp   client -> pico forward tcp => pico server => pico agent -> service
//   pico lib   client (Forward.connect, no local port) => pico server => pico agent -> service
//   pico http  the same bytes as HTTP requests: client -> pico server => pico agent -> HTTP service
//   pipes x2   client -> node -> node -> service: plain Node byte pipes (bench/tcp-peer.mjs relay), as many
//   pipes x3   processes as pico lib and pico tcp run, with no HTTP, framing or flow control: a baseline
// Cases: 1 GiB upload, 1 GiB download (MB/s), 64-byte round trips on one connection (p50, p99). Then pgbench
// (10 s) and redis-benchmark through pico tcp and direct.

import { writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { it } from "vitest"
import { forwardArgs, forwardedPort } from "../test/support/forward.js"
import { accepts, closedPort, waitFor } from "../test/support/http.js"
import {
  listeningPort,
  type PicoProcess,
  spawnNode,
  spawnPico,
  spawnProcess,
} from "../test/support/process.js"
import { psqlArgs, run, startPostgres, startRedis, startSshd } from "../test/support/services.js"

const bytes = Number(process.env.BENCH_TCP_BYTES ?? 1024 ** 3)
const roundTrips = Number(process.env.BENCH_TCP_ROUNDTRIPS ?? 10_000)
const pgbenchSeconds = Number(process.env.BENCH_PGBENCH_SECONDS ?? 10)
const work = fileURLToPath(new URL(".work/", import.meta.url))
const peer = fileURLToPath(new URL("tcp-peer.mjs", import.meta.url))

const processes: Array<{ readonly stop: () => Promise<unknown> }> = []

const jsonLine = async (started: PicoProcess): Promise<Record<string, number>> => {
  await waitFor("an answer", () => started.logs.length > 0 || started.child.exitCode !== null, 600_000)
  const answer = started.logs[0]
  if (answer === undefined) throw new Error(`${started.text()}`)
  return answer as Record<string, number>
}

interface Path {
  readonly name: string
  /** How the client connects: to a TCP port, through Forward.connect to the proxy port, or HTTP requests. */
  readonly protocol: "tcp" | "library" | "http"
  readonly port: number
}

const measure = (path: Path, test: string) =>
  jsonLine(spawnNode(peer, [path.protocol, String(path.port), test]))

const ratio = (value: number, base: number) => `${(value / base).toFixed(2)}x`

it("measures TCP endpoints against a direct connection, ssh -L and the HTTP path", async () => {
  const lines: Array<string> = []
  const say = (line: string) => {
    lines.push(line)
    console.log(line)
  }
  try {
    const service = spawnNode(peer, ["serve"])
    processes.push(service)
    const ports = await jsonLine(service)
    // Three plain Node pipes in a chain, each to the one before it, the first to the service.
    const pipes: Array<number> = []
    for (let target = ports.tcp as number; pipes.length < 3; ) {
      const pipe = spawnNode(peer, ["relay", String(target)])
      processes.push(pipe)
      target = (await jsonLine(pipe)).port as number
      pipes.push(target)
    }

    // OpenSSH's local forward, to the same service.
    const sshd = await startSshd()
    processes.push(sshd)
    const sshPort = await closedPort()
    const tunnel = spawnProcess("ssh", [
      ...["-N", "-o", "ExitOnForwardFailure=yes", "-L", `127.0.0.1:${sshPort}:127.0.0.1:${ports.tcp}`],
      ...sshd.sshArgs(sshd.port),
    ])
    processes.push(tunnel)
    await waitFor("ssh -L listening", () => accepts(sshPort), 30_000)

    // Pico: a server, an agent for the TCP and the HTTP service, pico forward tcp.
    const postgres = await startPostgres()
    processes.push(postgres)
    const redis = await startRedis()
    processes.push(redis)
    const server = spawnPico([
      "server",
      ...["--proxy.bind-addr", "127.0.0.1:0", "--upstream.bind-addr", "127.0.0.1:0"],
      ...["--admin.bind-addr", "127.0.0.1:0", "--gossip.bind-addr", "127.0.0.1:0"],
      ...["--server.graceful-shutdown-timeout", "1s"],
    ])
    processes.push(server)
    const proxyPort = await listeningPort(server, "proxy")
    const endpoints = {
      "bench-tcp": `tcp://127.0.0.1:${ports.tcp}`,
      "bench-http": `127.0.0.1:${ports.http}`,
      "bench-db": `tcp://127.0.0.1:${postgres.port}`,
      "bench-redis": `tcp://127.0.0.1:${redis.port}`,
    }
    const agent = spawnPico([
      ...[
        "agent",
        "--endpoints",
        Object.entries(endpoints)
          .map(([id, address]) => `${id}/${address}`)
          .join(","),
      ],
      ...["--server.url", `http://127.0.0.1:${await listeningPort(server, "upstream")}`],
    ])
    processes.push(agent)
    for (const _ of Object.keys(endpoints)) await agent.waitForLog("connected")
    const forward = async (endpointId: string) => {
      const started = spawnPico(forwardArgs(endpointId, `http://127.0.0.1:${proxyPort}`))
      processes.push(started)
      return forwardedPort(started)
    }

    const paths: ReadonlyArray<Path> = [
      { name: "direct", protocol: "tcp", port: ports.tcp as number },
      { name: "ssh -L", protocol: "tcp", port: sshPort },
      { name: "pico tcp", protocol: "tcp", port: await forward("bench-tcp") },
      { name: "pico lib", protocol: "library", port: proxyPort },
      { name: "pico http", protocol: "http", port: proxyPort },
      { name: "pipes x2", protocol: "tcp", port: pipes[1] as number },
      { name: "pipes x3", protocol: "tcp", port: pipes[2] as number },
    ]
    for (const path of paths) {
      await measure(path, `upload:${64 * 1024 * 1024}`)
      await measure(path, "pingpong:1000")
    }

    const load = `${(await run("cat", ["/proc/loadavg"])).stdout.trim()}`
    say(
      `node ${process.version}, ${bytes / 1024 ** 2} MiB each way, ${roundTrips} round trips; load before: ${load}`,
    )
    say("")
    say("case                 path         MB/s   p50 us   p99 us   vs direct   vs ssh -L")
    const results: Record<string, Record<string, Record<string, number>>> = {}
    for (const [label, test] of [
      ["bulk upload", `upload:${bytes}`],
      ["bulk download", `download:${bytes}`],
      ["64 B round trips", `pingpong:${roundTrips}`],
    ] as const) {
      const byPath: Record<string, Record<string, number>> = {}
      for (const path of paths) byPath[path.name] = await measure(path, test)
      results[label] = byPath
      const direct = byPath.direct as Record<string, number>
      const ssh = byPath["ssh -L"] as Record<string, number>
      for (const path of paths) {
        const result = byPath[path.name] as Record<string, number>
        const bulk = result.mbps !== undefined
        const cells = bulk
          ? [
              (result.mbps as number).toFixed(0).padStart(6),
              "       -        -",
              ratio(result.mbps as number, direct.mbps as number).padStart(11),
              ratio(result.mbps as number, ssh.mbps as number).padStart(11),
            ]
          : [
              "     -",
              `${(result.p50 as number).toFixed(0).padStart(8)} ${(result.p99 as number).toFixed(0).padStart(8)}`,
              ratio(result.p50 as number, direct.p50 as number).padStart(11),
              ratio(result.p50 as number, ssh.p50 as number).padStart(11),
            ]
        say(`${(path === paths[0] ? label : "").padEnd(20)} ${path.name.padEnd(10)} ${cells.join(" ")}`)
      }
    }

    // --- PostgreSQL and Redis, direct and through pico tcp ---
    const dbPort = await forward("bench-db")
    const pgbench = (port: number, ...args: Array<string>) =>
      run("pgbench", ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", ...args, "postgres"], {
        timeoutMs: 300_000,
      })
    await pgbench(postgres.port, "-i", "-q", "-s", "10")
    const tps = async (port: number) => {
      const output = (await pgbench(port, "-n", "-c", "8", "-j", "2", "-T", String(pgbenchSeconds))).stdout
      return {
        tps: Number(/tps = ([\d.]+)/.exec(output)?.[1]),
        latency: Number(/latency average = ([\d.]+) ms/.exec(output)?.[1]),
      }
    }
    const pgDirect = await tps(postgres.port)
    const pgPico = await tps(dbPort)
    results.pgbench = { direct: pgDirect, "pico tcp": pgPico }
    say("")
    say(`pgbench -c 8 -j 2 -T ${pgbenchSeconds} (scale 10)   tps     latency avg ms`)
    say(`  direct                              ${pgDirect.tps.toFixed(0).padStart(6)}   ${pgDirect.latency}`)
    say(
      `  pico tcp                            ${pgPico.tps.toFixed(0).padStart(6)}   ${pgPico.latency}   ` +
        `(${ratio(pgPico.tps, pgDirect.tps)} direct)`,
    )
    await run("psql", psqlArgs(postgres.port, "-c", "SELECT 1"))

    const redisPort = await forward("bench-redis")
    const redisBench = async (port: number) => {
      const output = (
        await run(
          "redis-benchmark",
          ["-h", "127.0.0.1", "-p", String(port), "-q", "-n", "100000", "-t", "ping,set,get"],
          {
            timeoutMs: 300_000,
          },
        )
      ).stdout
      return Object.fromEntries(
        [...output.matchAll(/(\w+): ([\d.]+) requests per second/g)].map((match) => [
          match[1],
          Number(match[2]),
        ]),
      ) as Record<string, number>
    }
    const redisDirect = await redisBench(redis.port)
    const redisPico = await redisBench(redisPort)
    results["redis-benchmark"] = { direct: redisDirect, "pico tcp": redisPico }
    say("")
    say("redis-benchmark -q -n 100000 (50 clients)   direct req/s   pico tcp req/s")
    for (const [test, direct] of Object.entries(redisDirect))
      say(
        `  ${test.padEnd(40)} ${direct.toFixed(0).padStart(10)}   ${(redisPico[test] ?? 0).toFixed(0).padStart(10)}   ` +
          `(${ratio(redisPico[test] ?? 0, direct)} direct)`,
      )

    // --- Targets: for pico forward tcp, and for the library's connection ---
    const figure = (label: string, path: string, name: "mbps" | "p50") =>
      results[label]?.[path]?.[name] as number
    const check = (what: string, ok: boolean) => say(`${ok ? "PASS" : "FAIL"}  ${what}`)
    say("")
    for (const pico of ["pico tcp", "pico lib"]) {
      for (const label of ["bulk upload", "bulk download"]) {
        const mbps = figure(label, pico, "mbps")
        const direct = figure(label, "direct", "mbps")
        const ssh = figure(label, "ssh -L", "mbps")
        check(`${label}: ${pico} >= 0.5x direct (${ratio(mbps, direct)})`, mbps >= 0.5 * direct)
        check(`${label}: ${pico} faster than ssh -L (${ratio(mbps, ssh)})`, mbps > ssh)
      }
      const p50 = figure("64 B round trips", pico, "p50")
      const ssh = figure("64 B round trips", "ssh -L", "p50")
      check(`round trips: ${pico} p50 below ssh -L's (${ratio(p50, ssh)})`, p50 < ssh)
    }
    // What the same number of naive Node pipes does, with no framing at all: a baseline for each Pico path.
    say("")
    for (const [pico, pipes] of [
      ["pico tcp", "pipes x3"],
      ["pico lib", "pipes x2"],
    ] as const) {
      const against = (label: string, name: "mbps" | "p50") =>
        `${ratio(figure(label, pico, name), figure(label, pipes, name))} (${pipes} ` +
        `${ratio(figure(label, pipes, name), figure(label, "direct", name))} direct` +
        (name === "p50"
          ? `, ${ratio(figure(label, pipes, name), figure(label, "ssh -L", name))} ssh -L)`
          : ")")
      say(
        `baseline: ${pico} against ${pipes}: MB/s up ${against("bulk upload", "mbps")}, down ` +
          `${against("bulk download", "mbps")} (higher is faster); round-trip p50 ` +
          `${against("64 B round trips", "p50")} (lower is faster)`,
      )
    }
    writeFileSync(`${work}tcp.json`, `${JSON.stringify(results, null, 2)}\n`)
  } finally {
    writeFileSync(`${work}tcp.txt`, `${lines.join("\n")}\n`)
    for (const started of processes.reverse()) await started.stop()
  }
}, 1_800_000)
