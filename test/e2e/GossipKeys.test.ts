import { randomBytes } from "node:crypto"
import * as dgram from "node:dgram"
import { mkdtempSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { parseHostPort } from "../../src/Domain/Address.js"
import { request, waitFor } from "../support/http.js"
import { picoPerTest } from "../support/process.js"
import { readMetrics, valueOf } from "../support/prometheus.js"
import { startServerProcess } from "../support/serverProcess.js"

const { pico, cleanups } = picoPerTest(afterEach)

const loopback = [
  ...["--proxy.bind-addr", "127.0.0.1:0", "--upstream.bind-addr", "127.0.0.1:0"],
  ...["--admin.bind-addr", "127.0.0.1:0", "--gossip.bind-addr", "127.0.0.1:0"],
]
const newKey = () => randomBytes(32).toString("base64")
const unauthenticated = (log: Record<string, unknown>) =>
  log.level === "warn" && String(log.msg).startsWith("gossip is unauthenticated")

describe("pico server with gossip keys", () => {
  it("logs its keys redacted, one per key, and warns when it has none", async () => {
    const [inline, fromFile] = [newKey(), newKey()]
    const keyFile = join(mkdtempSync(join(tmpdir(), "pico-gossip-")), "keys")
    writeFileSync(keyFile, `${fromFile}\n`)
    const keyed = pico(["server", ...loopback, "--gossip.secret-key", `${inline},file:${keyFile}`])
    expect((await keyed.waitForLog("gossip started")).keys).toBe(2)
    const starting = await keyed.waitForLog("starting pico server")
    expect((starting.config as { gossip: unknown }).gossip).toMatchObject({
      secret_key: ["(redacted)", "(redacted)"],
    })

    const unkeyed = pico(["server", ...loopback])
    await waitFor("the unauthenticated warning", () => unkeyed.logs.some(unauthenticated))
    expect((await unkeyed.waitForLog("starting pico server")).config).toMatchObject({
      gossip: { secret_key: [] },
    })

    await keyed.stop()
    expect(keyed.logs.some(unauthenticated)).toBe(false)
    const output = JSON.stringify(keyed.logs) + keyed.text()
    for (const key of [inline, fromFile]) expect(output).not.toContain(key)
  })

  it("exits 1 when its key is not the cluster's, saying why", async () => {
    const first = pico(["server", ...loopback, "--gossip.secret-key", newKey()])
    const gossipAddr = String((await first.waitForLog("gossip started"))["advertise-addr"])
    const stranger = pico([
      "server",
      ...loopback,
      ...["--gossip.secret-key", newKey(), "--cluster.join", gossipAddr, "--cluster.join-timeout", "1s"],
    ])
    expect(await stranger.exited).toBe(1)
    expect(stranger.logs.find((log) => log.level === "error")?.msg).toBe(
      `join failed: ${gossipAddr}: refused: the peer has none of this node's keys (compare --gossip.secret-key)`,
    )
  })

  it("refuses a short key naming the flag and the key's place, never the key", async () => {
    const short = "not-nearly-long-enough"
    const inline = pico(["server", ...loopback, "--gossip.secret-key", `${newKey()},${short}`])
    expect(await inline.exited).toBe(1)
    expect(inline.text()).toContain(
      "invalid config: --gossip.secret-key: invalid value (redacted): item 2: must be at least 32 characters",
    )
    const keyFile = join(mkdtempSync(join(tmpdir(), "pico-gossip-")), "keys")
    writeFileSync(keyFile, `${newKey()}\n${short}\n`)
    const fromFile = pico(["server", ...loopback, "--gossip.secret-key", `file:${keyFile}`])
    expect(await fromFile.exited).toBe(1)
    expect(fromFile.text()).toContain(
      `invalid config: --gossip.secret-key: ${keyFile} line 2: must be at least 32`,
    )
    for (const run of [inline, fromFile]) expect(JSON.stringify(run.logs) + run.text()).not.toContain(short)
  })

  it("warns about gossip that does not decode, one line for a burst, with the count and the reason", async () => {
    const node = await startServerProcess(pico, [])
    const gossip = parseHostPort(node.gossipAddr) as { host: string; port: number }
    const socket = dgram.createSocket("udp4")
    cleanups.push(async () => {
      socket.close()
    })
    const garbage = Buffer.concat([Buffer.of(1), Buffer.from("{not json")])
    for (let sent = 0; sent < 5; sent++)
      await new Promise<void>((resolve) => socket.send(garbage, gossip.port, gossip.host, () => resolve()))
    const first = await node.process.waitForLog("dropped malformed gossip messages")
    expect(first).toMatchObject({ level: "warn", subsystem: "gossip", count: 1 })
    expect(String(first.reason)).not.toBe("")
    await waitFor("all five counted", async () => {
      const metrics = readMetrics((await request(`http://127.0.0.1:${node.adminPort}/metrics`)).body)
      return valueOf(metrics, "pico_gossip_malformed_messages_total") === 5
    })
    // The other four wait for the interval's line (10 s): one line so far, not five.
    expect(node.process.logs.filter((log) => log.msg === "dropped malformed gossip messages")).toHaveLength(1)
  })

  it("cuts a flood of connections and of unchecked bytes on the gossip port, says so, and still takes a join", async () => {
    const key = newKey()
    const first = await startServerProcess(pico, [], ["--gossip.secret-key", key])
    const gossip = parseHostPort(first.gossipAddr) as { host: string; port: number }
    const sockets: Array<net.Socket> = []
    cleanups.push(async () => {
      for (const socket of sockets) socket.destroy()
    })
    const closed = new Set<net.Socket>()
    const connect = () =>
      new Promise<net.Socket>((resolve) => {
        const socket = net.connect(gossip.port, gossip.host, () => resolve(socket))
        sockets.push(socket)
        socket.on("error", () => {})
        socket.on("close", () => closed.add(socket))
      })
    const refused = async (reason: string) =>
      valueOf(
        readMetrics((await request(`http://127.0.0.1:${first.adminPort}/metrics`)).body),
        "pico_gossip_refused_streams_total",
        { reason },
      )

    // Requests are checked against the key only once whole. Five announce 16 MiB and send 15: the node holds
    // four (64 MiB between them) and cuts the one that overruns.
    const prefix = Buffer.alloc(4)
    prefix.writeUInt32BE(16 * 1024 * 1024)
    const holders = await Promise.all([1, 2, 3, 4, 5].map(connect))
    for (const holder of holders) holder.write(Buffer.concat([prefix, Buffer.alloc(15 * 1024 * 1024)]))
    await waitFor("a holder cut", () => holders.some((holder) => closed.has(holder)))
    expect(holders.filter((holder) => closed.has(holder))).toHaveLength(1)
    expect(await refused("over_budget")).toBe(1)
    for (const holder of holders) holder.destroy()

    // 70 silent connections: the ones past 64 open are cut at once.
    const silent: Array<net.Socket> = []
    for (let count = 0; count < 70; count++) silent.push(await connect())
    await waitFor("the connections past the cap cut", () => silent.filter((s) => closed.has(s)).length >= 6)
    expect(await refused("too_many_streams")).toBe(silent.filter((socket) => closed.has(socket)).length)
    await waitFor("a warning that names the reasons", () =>
      first.process.logs.some((log) => log.msg === "cut gossip connections" && log.subsystem === "gossip"),
    )
    for (const socket of silent) socket.destroy()

    const second = pico([
      "server",
      ...loopback,
      ...["--gossip.secret-key", key, "--cluster.join", first.gossipAddr],
    ])
    await second.waitForLog("joined cluster")
    // The join's own exchange was not cut, nor anything else for being slow or large.
    expect([(await refused("too_slow")) ?? 0, (await refused("too_large")) ?? 0]).toEqual([0, 0])
  })
})
