import * as http from "node:http"
import { pipeline } from "node:stream/promises"
import { afterEach, describe, expect, it } from "vitest"
import { request, startHttpServer } from "../support/http.js"
import { listeningPort, picoPerTest } from "../support/process.js"

const { pico, cleanups } = picoPerTest(afterEach)

/** Every listener but the proxy on an ephemeral loopback port, so tests never collide. */
const loopbackPorts = [
  "--upstream.bind-addr",
  "127.0.0.1:0",
  "--admin.bind-addr",
  "127.0.0.1:0",
  "--gossip.bind-addr",
  "127.0.0.1:0",
]

const loopbackServer = () => pico(["server", "--proxy.bind-addr", "127.0.0.1:0", ...loopbackPorts])

const MiB = 1024 * 1024
const transferSize = 256 * MiB

/** Yields `total` bytes in 64 KiB chunks without ever holding more than one. */
async function* generate(total: number) {
  const chunk = Buffer.alloc(64 * 1024, 7)
  for (let sent = 0; sent < total; sent += chunk.length)
    yield chunk.subarray(0, Math.min(chunk.length, total - sent))
}

describe("pico server and pico agent as processes", () => {
  it("proxy a request, stream 256 MiB each way with bounded memory, and stop on SIGTERM", async () => {
    const service = await startHttpServer((req, res) => {
      if (req.url === "/download") {
        res.writeHead(200, { "content-length": transferSize })
        void pipeline(generate(transferSize), res).catch(() => {})
        return
      }
      let received = 0
      req.on("data", (chunk: Buffer) => {
        received += chunk.length
      })
      req.on("end", () => res.end(String(received)))
    })
    cleanups.push(service.close)
    const server = loopbackServer()
    // The startup line logs the configuration as it would be written in a file.
    const started = await server.waitForLog("starting pico server")
    expect(started.config).toMatchObject({ proxy: { gateway_timeout: "15s" }, gossip: { interval: "500ms" } })
    const proxyPort = await listeningPort(server, "proxy")
    const upstreamPort = await listeningPort(server, "upstream")
    const agent = pico([
      "agent",
      "--endpoints",
      `big/127.0.0.1:${service.port}`,
      "--server.url",
      `http://127.0.0.1:${upstreamPort}`,
      "--admin.bind-addr",
      "127.0.0.1:0",
    ])
    await agent.waitForLog("connected")
    await server.waitForLog("upstream connected")
    const agentAdminPort = await listeningPort(agent, "admin")

    const small = await request(`http://127.0.0.1:${proxyPort}/hello`, {
      method: "POST",
      headers: { "x-pico-endpoint": "big" },
      body: "abc",
    })
    expect(small.body).toBe("3")

    const uploaded = await new Promise<string>((resolve, reject) => {
      const req = http.request(
        `http://127.0.0.1:${proxyPort}/upload`,
        { method: "POST", headers: { "x-pico-endpoint": "big" } },
        (res) => {
          let body = ""
          res.on("data", (chunk: Buffer) => (body += chunk.toString()))
          res.on("end", () => resolve(body))
        },
      )
      req.on("error", reject)
      void pipeline(generate(transferSize), req).catch(reject)
    })
    expect(Number(uploaded)).toBe(transferSize)

    // The agent's own admin port counts what it forwarded, per endpoint.
    expect((await request(`http://127.0.0.1:${agentAdminPort}/health`)).status).toBe(200)
    const agentMetrics = (await request(`http://127.0.0.1:${agentAdminPort}/metrics`)).body
    expect(agentMetrics).toMatch(/^pico_agent_forwards_total\{endpoint_id="big"\} [1-9]/m)

    const downloaded = await new Promise<number>((resolve, reject) => {
      http
        .get(`http://127.0.0.1:${proxyPort}/download`, { headers: { "x-pico-endpoint": "big" } }, (res) => {
          let received = 0
          res.on("data", (chunk: Buffer) => {
            received += chunk.length
          })
          res.on("end", () => resolve(received))
          res.on("error", reject)
        })
        .on("error", reject)
    })
    expect(downloaded).toBe(transferSize)

    // Buffering either body whole would push a process past 256 MiB; streaming keeps both far below.
    expect(server.peakRssMiB()).toBeLessThan(200)
    expect(agent.peakRssMiB()).toBeLessThan(200)

    expect(await server.stop()).toBe(0)
    expect(server.logs.find((log) => log.msg === "shutting down: draining")?.["grace-period"]).toBe("1m")
    expect(server.logs.some((log) => log.msg === "shutdown complete")).toBe(true)
    expect(await agent.stop()).toBe(0)
  })

  it("exits 1 naming the field and value of a bad config", async () => {
    const server = pico(["server", "--proxy.gateway-timeout", "15x"])
    expect(await server.exited).toBe(1)
    expect(server.text()).toContain('invalid config: --proxy.gateway-timeout: invalid value "15x"')
    const agent = pico(["agent"])
    expect(await agent.exited).toBe(1)
    expect(agent.text()).toContain("invalid config: --endpoints: at least one endpoint is required")
  })

  it("agent exits 1 with the server's message when refused with 401", async () => {
    const refusing = await startHttpServer((_req, res) => res.end())
    refusing.server.on("upgrade", (_req, socket) =>
      socket.end(
        'HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: 25\r\n\r\n{"error":"invalid token"}',
      ),
    )
    cleanups.push(refusing.close)
    const agent = pico([
      "agent",
      "--endpoints",
      "e/4000",
      "--server.url",
      `http://127.0.0.1:${refusing.port}`,
    ])
    expect(await agent.exited).toBe(1)
    const error = agent.logs.find((log) => log.level === "error")
    expect(error?.msg).toBe("server refused the connection: invalid token")
  })

  it("server exits 1 naming the flag and address of a port that is taken", async () => {
    const taken = await startHttpServer((_req, res) => res.end())
    cleanups.push(taken.close)
    const proxy = pico(["server", "--proxy.bind-addr", `127.0.0.1:${taken.port}`, ...loopbackPorts])
    expect(await proxy.exited).toBe(1)
    expect(proxy.logs.find((log) => log.level === "error")?.msg).toBe(
      `--proxy.bind-addr 127.0.0.1:${taken.port}: address already in use`,
    )
    // Gossip listens on UDP and TCP: the TCP port is taken here.
    const gossip = pico([
      "server",
      ...["--proxy.bind-addr", "127.0.0.1:0", "--upstream.bind-addr", "127.0.0.1:0"],
      ...["--admin.bind-addr", "127.0.0.1:0", "--gossip.bind-addr", `127.0.0.1:${taken.port}`],
    ])
    expect(await gossip.exited).toBe(1)
    expect(gossip.logs.find((log) => log.level === "error")?.msg).toBe(
      `--gossip.bind-addr 127.0.0.1:${taken.port}: address already in use`,
    )
  })

  it("server exits 1 naming the DNS name of a join that does not resolve", async () => {
    // .invalid never resolves (RFC 2606).
    const server = pico([
      "server",
      "--proxy.bind-addr",
      "127.0.0.1:0",
      ...loopbackPorts,
      "--cluster.join",
      "pico.invalid",
      "--cluster.join-timeout",
      "100ms",
    ])
    expect(await server.exited).toBe(1)
    expect(server.logs.find((log) => log.msg === "join address did not resolve")?.error).toBe(
      "ENOTFOUND pico.invalid",
    )
    expect(server.logs.find((log) => log.level === "error")?.msg).toBe(
      "join failed: no join address resolved: ENOTFOUND pico.invalid",
    )
  })
})
