import { spawn } from "node:child_process"
import { readdirSync } from "node:fs"
import { afterEach, describe, expect, it } from "vitest"
import { request, startHttpServer, waitFor } from "../support/http.js"
import { startAgent } from "../support/node.js"
import { listeningPort, loopbackPorts, picoPerTest } from "../support/process.js"

const { pico, cleanups } = picoPerTest(afterEach)

/**
 * A separate process that makes `attempts` connections to the port, up to 3,000 at a time, and sends nothing on
 * them: the flood of silent sockets that once pinned a node at its file-descriptor limit.
 */
const flood = (port: number, attempts: number) =>
  new Promise<void>((resolve, reject) => {
    // It ends once every attempt has been made and has had a few seconds: a connection the kernel completed but
    // the server never accepted (its accept queue overflowed) would otherwise hold it open for minutes.
    const script = `
      const net = require("node:net")
      const [port, attempts] = process.argv.slice(1).map(Number)
      let started = 0, open = 0
      const more = () => {
        while (started < attempts && open < 3000) {
          started++; open++
          const socket = net.connect(port, "127.0.0.1")
          socket.on("error", () => {})
          socket.on("close", () => { open--; more() })
        }
        if (started === attempts) setTimeout(() => process.exit(0), 3000).unref()
      }
      more()`
    const child = spawn(process.execPath, ["-e", script, String(port), String(attempts)], { stdio: "ignore" })
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`flood exited with ${code}`))))
    cleanups.push(async () => void child.kill())
  })

/** Open file descriptors of a process: its sockets, mostly. */
const openFds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length

describe("--proxy.max-connections", () => {
  it("holds under 25,000 connection attempts while real requests are still served", async () => {
    const service = await startHttpServer((_req, res) => res.end("served"))
    cleanups.push(service.close)
    const server = pico([
      "server",
      ...loopbackPorts("proxy", "upstream", "admin", "gossip"),
      "--proxy.max-connections",
      "1000",
      // The last thousand silent sockets are closed by the header timeout: keep the test's tail short.
      "--proxy.read-header-timeout",
      "3s",
    ])
    const proxyPort = await listeningPort(server, "proxy")
    const upstreamPort = await listeningPort(server, "upstream")
    const adminPort = await listeningPort(server, "admin")
    const agent = startAgent(`http://127.0.0.1:${upstreamPort}`, { e: service.port })
    cleanups.push(agent.stop)
    const url = `http://127.0.0.1:${proxyPort}/`
    await waitFor(
      "agent registered",
      async () => (await request(url, { headers: { host: "e.x" } })).status === 200,
    )

    let flooding = true
    let peakFds = 0
    const statuses: Array<number> = []
    const attack = flood(proxyPort, 25_000).finally(() => {
      flooding = false
    })
    while (flooding) {
      statuses.push((await request(url, { headers: { host: "e.x" } })).status)
      peakFds = Math.max(peakFds, openFds(server.child.pid as number))
    }
    await attack

    expect(statuses.length).toBeGreaterThan(0)
    expect(statuses.every((status) => status === 200)).toBe(true)
    // The cap, plus the process's own files, the agent's tunnel and the listeners.
    expect(peakFds).toBeLessThan(1000 + 100)
    const metrics = (await request(`http://127.0.0.1:${adminPort}/metrics`)).body
    const shed = [
      ...metrics.matchAll(/pico_connections_over_limit_total\{port="proxy",action="\w+"\} (\d+)/g),
    ]
    // Most of the flood reached the server and was shed there; the kernel refused the rest when the accept queue
    // overflowed.
    expect(shed.reduce((sum, [, count]) => sum + Number(count), 0)).toBeGreaterThanOrEqual(20_000)
    const logged = server.logs.filter((log) => log.msg === "connection limit reached")
    expect(logged.length).toBeGreaterThan(0)
    expect(logged[0]?.["max-connections"]).toBe(1000)
  }, 120_000)
})
