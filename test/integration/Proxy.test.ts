import { createHash, randomBytes } from "node:crypto"
import * as http from "node:http"
import type { Socket } from "node:net"
import * as net from "node:net"
import { duplexPair } from "node:stream"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import WebSocket, { WebSocketServer } from "ws"
import { closedPort, request, startHttpServer, startInFlightServices, waitFor } from "../support/http.js"
import { startAgent, startNode, type TestAgent, type TestNode } from "../support/node.js"
import { readMetrics, valueOf } from "../support/prometheus.js"

interface Seen {
  readonly method: string
  readonly url: string
  readonly headers: http.IncomingHttpHeaders
  readonly rawHeaders: ReadonlyArray<string>
  readonly body: string
}

let node: TestNode
let agent: TestAgent
let local: Awaited<ReturnType<typeof startHttpServer>>
let seen: Array<Seen> = []
const cleanups: Array<() => Promise<void>> = []

beforeAll(async () => {
  local = await startHttpServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8")
      seen.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body,
      })
      res.writeHead(200, [
        "Content-Type",
        "text/plain",
        "Set-Cookie",
        "a=1",
        "Set-Cookie",
        "b=2",
        "Connection",
        "keep-alive, X-Hop",
        "X-Hop",
        "secret",
        "Keep-Alive",
        "timeout=99",
      ])
      res.end(`${req.method} ${req.url} ${body}`)
    })
  })
  node = await startNode()
  agent = startAgent(node.upstreamUrl, { "my-endpoint": local.port })
  await waitFor("agent registered", async () => (await node.upstreamCount("my-endpoint")) === 1)
})

afterAll(async () => {
  for (const cleanup of cleanups) await cleanup()
  await agent.stop()
  await node.close()
  await local.close()
})

describe("proxying through a tunnel", () => {
  it("forwards by x-pico-endpoint and by Host, with reverse-proxy headers", async () => {
    seen = []
    const byHeader = await request(`${node.proxyUrl}/path?q=1`, {
      headers: { "x-pico-endpoint": "my-endpoint", forwarded: "for=192.0.2.1", "x-real-ip": "192.0.2.2" },
    })
    expect(byHeader.status).toBe(200)
    expect(byHeader.body).toBe("GET /path?q=1 ")
    const byHost = await request(`${node.proxyUrl}/other`, {
      headers: { host: "my-endpoint.pico.example.com:8000" },
    })
    expect(byHost.status).toBe(200)
    expect(byHost.body).toBe("GET /other ")

    const [first, second] = seen
    expect(first?.headers["x-forwarded-for"]).toBe("127.0.0.1")
    expect(first?.headers["x-forwarded-proto"]).toBe("http")
    expect(first?.headers["x-forwarded-host"]).toBe(`127.0.0.1:${node.proxyPort}`)
    // Headers Pico does not own pass as the client sent them (docs/security.md): a service must not trust them.
    expect([first?.headers.forwarded, first?.headers["x-real-ip"]]).toEqual(["for=192.0.2.1", "192.0.2.2"])
    expect(second?.headers.host).toBe("my-endpoint.pico.example.com:8000")
    expect(second?.headers["x-forwarded-host"]).toBe("my-endpoint.pico.example.com:8000")
  })

  it("drops hop-by-hop headers both ways and keeps repeated headers apart", async () => {
    seen = []
    const response = await request(`${node.proxyUrl}/`, {
      headers: [
        "Host",
        `127.0.0.1:${node.proxyPort}`,
        "x-pico-endpoint",
        "my-endpoint",
        "Connection",
        "keep-alive, X-Client-Hop",
        "X-Client-Hop",
        "drop me",
        "Keep-Alive",
        "timeout=5",
        "X-Forwarded-For",
        "10.1.1.1",
        "X-Repeated",
        "one",
        "X-Repeated",
        "two",
      ],
    })
    expect(response.status).toBe(200)
    const upstreamSaw = seen[0]
    expect(upstreamSaw?.headers["x-client-hop"]).toBeUndefined()
    expect(upstreamSaw?.headers["keep-alive"]).toBeUndefined()
    expect(upstreamSaw?.headers["x-forwarded-for"]).toBe("10.1.1.1, 127.0.0.1")
    expect(upstreamSaw?.rawHeaders.filter((name) => name === "X-Repeated")).toHaveLength(2)
    expect(response.headers["set-cookie"]).toEqual(["a=1", "b=2"])
    expect(response.headers["x-hop"]).toBeUndefined()
    // Node writes its own Keep-Alive for the client connection; the upstream's must not leak through.
    expect(response.headers["keep-alive"]).not.toBe("timeout=99")
  })

  it("adds the client's address to its X-Forwarded-For even when the client resets the connection at once", async () => {
    // The request is whole before the reset, so the node may still send it on: its chain must end with the
    // address that reached the node, never with the client's own last entry.
    seen = []
    const reset = () => seen.filter((each) => each.url.startsWith("/reset-"))
    for (let attempt = 0; attempt < 40; attempt++) {
      const socket = net.connect(node.proxyPort, "127.0.0.1")
      socket.on("error", () => {})
      await new Promise((resolve) => socket.once("connect", resolve))
      socket.write(
        `POST /reset-${attempt} HTTP/1.1\r\nHost: x\r\nx-pico-endpoint: my-endpoint\r\n` +
          "X-Forwarded-For: 6.6.6.6\r\nContent-Length: 2\r\n\r\nhi",
      )
      socket.resetAndDestroy()
      // The next attempt only once the node has dealt with this one: its access to the service, or none.
      await request(`${node.proxyUrl}/sentinel`, { headers: { "x-pico-endpoint": "my-endpoint" } })
    }
    // Some are sent on (their address was read), some dropped (reset before it could be): none without the hop.
    for (const each of reset()) expect(each.headers["x-forwarded-for"]).toBe("6.6.6.6, 127.0.0.1")
  })

  it("drops a request whose connection has no address (a client that reset it before the node read it)", async () => {
    // A connection handed to the handler in process has no address, as one reset in the accept queue has none.
    const server = http.createServer(node.proxyHandler.handle)
    const [client, accepted] = duplexPair()
    server.emit("connection", accepted)
    const answer: Array<Buffer> = []
    client.on("data", (chunk: Buffer) => answer.push(chunk))
    // Over when the node closes the connection, or (the failure) answers on it.
    const closed = new Promise((resolve) => {
      accepted.once("close", resolve)
      client.once("data", resolve)
    })
    client.write(
      "GET /no-address HTTP/1.1\r\nHost: x\r\nx-pico-endpoint: my-endpoint\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
    )
    await closed
    expect(Buffer.concat(answer).toString()).toBe("")
    // The service has had every request sent before the next one's answer: it never had this one.
    expect(
      (await request(`${node.proxyUrl}/after`, { headers: { "x-pico-endpoint": "my-endpoint" } })).status,
    ).toBe(200)
    expect(seen.map((each) => each.url)).not.toContain("/no-address")
  })

  it("streams request bodies to the upstream", async () => {
    const response = await request(`${node.proxyUrl}/upload`, {
      method: "POST",
      headers: { "x-pico-endpoint": "my-endpoint" },
      body: "hello upstream",
    })
    expect(response.body).toBe("POST /upload hello upstream")
  })

  it("interleaves 100 concurrent requests whose responses complete out of order", async () => {
    // The service holds the first request until the test has received all 99 others through the same tunnel.
    let releaseFirst: () => void = () => {}
    const held = new Promise<void>((resolve) => {
      releaseFirst = resolve
    })
    const service = await startHttpServer((req, res) => {
      if (req.url === "/r0") void held.then(() => res.end("r0"))
      else res.end(req.url?.slice(1))
    })
    cleanups.push(service.close)
    const outOfOrder = startAgent(node.upstreamUrl, { ordered: service.port })
    cleanups.push(outOfOrder.stop)
    await waitFor("agent registered", async () => (await node.upstreamCount("ordered")) === 1)

    const send = (i: number) =>
      request(`${node.proxyUrl}/r${i}`, { headers: { "x-pico-endpoint": "ordered" } })
    const first = send(0)
    const rest = await Promise.all(Array.from({ length: 99 }, (_, i) => send(i + 1)))
    expect(rest.map((response) => response.body)).toEqual(Array.from({ length: 99 }, (_, i) => `r${i + 1}`))
    releaseFirst()
    expect((await first).body).toBe("r0")
  })

  it("keeps connections to the service alive across requests, and recovers when the service closes one", async () => {
    const sockets: Array<Socket> = []
    const service = await startHttpServer((_req, res) => res.end("kept"))
    service.server.on("connection", (socket) => sockets.push(socket))
    cleanups.push(service.close)
    const keepAgent = startAgent(node.upstreamUrl, { kept: service.port })
    cleanups.push(keepAgent.stop)
    await waitFor("agent registered", async () => (await node.upstreamCount("kept")) === 1)

    for (let i = 0; i < 5; i++) {
      expect((await request(`${node.proxyUrl}/`, { headers: { "x-pico-endpoint": "kept" } })).body).toBe(
        "kept",
      )
    }
    expect(sockets).toHaveLength(1)

    // The service drops its idle connection; the next request must not fail on the dead stream.
    const closed = new Promise((resolve) => sockets[0]?.once("close", resolve))
    sockets[0]?.destroy()
    await closed
    expect((await request(`${node.proxyUrl}/`, { headers: { "x-pico-endpoint": "kept" } })).body).toBe("kept")
  })

  it("answers 400 without an endpoint id and 503 for an unknown endpoint", async () => {
    const missing = await request(`${node.proxyUrl}/`, { headers: { host: "localhost" } })
    expect(missing.status).toBe(400)
    expect(missing.headers["content-type"]).toBe("application/json")
    expect(JSON.parse(missing.body)).toEqual({ error: "missing pico endpoint id" })
    const unknown = await request(`${node.proxyUrl}/`, { headers: { "x-pico-endpoint": "nobody" } })
    expect(unknown.status).toBe(503)
    expect(JSON.parse(unknown.body)).toEqual({ error: "endpoint not found" })
  })

  it("answers 502 when the agent cannot reach its local service", async () => {
    const refusedAgent = startAgent(node.upstreamUrl, { refused: await closedPort() })
    cleanups.push(refusedAgent.stop)
    await waitFor("agent registered", async () => (await node.upstreamCount("refused")) === 1)
    const response = await request(`${node.proxyUrl}/`, { headers: { "x-pico-endpoint": "refused" } })
    expect(response.status).toBe(502)
    expect(JSON.parse(response.body)).toEqual({ error: "upstream unreachable" })
  })

  it("load balances across the upstreams of one endpoint", async () => {
    const other = await startHttpServer((_req, res) => res.end("other"))
    cleanups.push(other.close)
    const first = await startHttpServer((_req, res) => res.end("first"))
    cleanups.push(first.close)
    const agents = [
      startAgent(node.upstreamUrl, { balanced: first.port }),
      startAgent(node.upstreamUrl, { balanced: other.port }),
    ]
    for (const a of agents) cleanups.push(a.stop)
    await waitFor("both agents registered", async () => (await node.upstreamCount("balanced")) === 2)
    const bodies = await Promise.all(
      Array.from({ length: 6 }, () =>
        request(`${node.proxyUrl}/`, { headers: { "x-pico-endpoint": "balanced" } }),
      ),
    ).then((responses) => responses.map((response) => response.body))
    expect(bodies.filter((body) => body === "first")).toHaveLength(3)
    expect(bodies.filter((body) => body === "other")).toHaveLength(3)
  })

  // The first agent's service takes each request and never answers; the agent then goes away with it in flight.
  it.each([
    ["POST", 502, "nothing"],
    ["GET", 200, "GET /in-flight"],
  ])(
    "sends a %s whose tunnel died with it in flight to another upstream only if it is idempotent",
    async (method, status, secondSaw) => {
      const { taken, silent, seenBySecond, second } = await startInFlightServices()
      cleanups.push(silent.close, second.close)
      const endpoint = `in-flight-${method.toLowerCase()}`
      const first = startAgent(node.upstreamUrl, { [endpoint]: silent.port })
      await waitFor("the first agent registered", async () => (await node.upstreamCount(endpoint)) === 1)
      const answer = request(`${node.proxyUrl}/in-flight`, {
        method,
        headers: { "x-pico-endpoint": endpoint },
      })
      await waitFor("the first service to have the request", () => taken.length === 1)
      const other = startAgent(node.upstreamUrl, { [endpoint]: second.port })
      cleanups.push(other.stop)
      await waitFor("the second agent registered", async () => (await node.upstreamCount(endpoint)) === 2)
      await first.stop()
      const response = await answer
      expect(response.status).toBe(status)
      expect(seenBySecond.length === 0 ? "nothing" : seenBySecond.join()).toBe(secondSaw)
    },
  )

  it("sends nothing for a client that left while its request waited for a route", async () => {
    const { seenBySecond, second } = await startInFlightServices()
    cleanups.push(second.close)
    const endpoint = "gone-client"
    const first = startAgent(node.upstreamUrl, { [endpoint]: second.port })
    await waitFor("the first agent registered", async () => (await node.upstreamCount(endpoint)) === 1)
    await first.stop()
    await waitFor("the route gone", async () => (await node.upstreamCount(endpoint)) === 0)
    const gone = async () =>
      valueOf(readMetrics((await request(`${node.adminUrl}/metrics`)).body), "pico_proxy_requests_total", {
        status: "499",
      }) ?? 0
    const goneBefore = await gone()
    // The node waits for the endpoint to come back (it had it lately); the client gives up meanwhile.
    const client = net.connect(node.proxyPort, "127.0.0.1")
    client.on("error", () => {})
    await new Promise<void>((resolve) =>
      client.write(`DELETE /while-waiting HTTP/1.1\r\nHost: x\r\nx-pico-endpoint: ${endpoint}\r\n\r\n`, () =>
        resolve(),
      ),
    )
    client.destroy()
    await waitFor("the client's 499", async () => (await gone()) === goneBefore + 1)
    const back = startAgent(node.upstreamUrl, { [endpoint]: second.port })
    cleanups.push(back.stop)
    await waitFor("the endpoint back", async () => (await node.upstreamCount(endpoint)) === 1)
    const after = await request(`${node.proxyUrl}/after`, { headers: { "x-pico-endpoint": endpoint } })
    expect(after.status).toBe(200)
    expect(seenBySecond).toEqual(["GET /after"])
  })

  it("passes WebSocket upgrades through to the upstream", async () => {
    const wsLocal = await startHttpServer((_req, res) => res.end())
    cleanups.push(wsLocal.close)
    const wss = new WebSocketServer({ server: wsLocal.server })
    wss.on("connection", (socket, req) => {
      socket.send(`hello ${req.url}`)
      socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }))
    })
    cleanups.push(async () => wss.close())
    const wsAgent = startAgent(node.upstreamUrl, { echo: wsLocal.port })
    cleanups.push(wsAgent.stop)
    await waitFor("agent registered", async () => (await node.upstreamCount("echo")) === 1)

    const client = new WebSocket(`ws://127.0.0.1:${node.proxyPort}/chat`, {
      headers: { "x-pico-endpoint": "echo" },
    })
    const received: Array<string> = []
    const done = new Promise<void>((resolve, reject) => {
      client.on("message", (data) => {
        received.push(data.toString())
        if (received.length === 1) client.send("ping through pico")
        else resolve()
      })
      client.on("error", reject)
    })
    await done
    client.close()
    expect(received).toEqual(["hello /chat", "ping through pico"])
  })

  it("refuses a WebSocket upgrade for an unknown endpoint with a JSON error", async () => {
    const client = new WebSocket(`ws://127.0.0.1:${node.proxyPort}/`, {
      headers: { "x-pico-endpoint": "nobody" },
    })
    const status = await new Promise<number>((resolve) =>
      client.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0)),
    )
    expect(status).toBe(503)
  })

  it("carries a large upload intact to a service that reads it in fits and starts", async () => {
    // The agent writes the body into a connection that keeps filling up. Pieces it took in place from its reused
    // read buffer can then wait in that connection's queue: if the agent reused the buffer under them (its
    // forwarder's probe made to say it never holds any, say), the service would hash other bytes.
    const stalling = await startHttpServer((req, res) => {
      const hash = createHash("sha256")
      req.on("data", (chunk: Buffer) => {
        hash.update(chunk)
        req.pause()
        setTimeout(() => req.resume(), 1)
      })
      req.on("end", () => res.end(hash.digest("hex")))
    })
    cleanups.push(stalling.close)
    const stallingAgent = startAgent(node.upstreamUrl, { stalling: stalling.port })
    cleanups.push(stallingAgent.stop)
    await waitFor("agent registered", async () => (await node.upstreamCount("stalling")) === 1)
    const body = randomBytes(16 * 1024 * 1024)
    const answer = await request(`${node.proxyUrl}/upload`, {
      method: "POST",
      headers: { "x-pico-endpoint": "stalling" },
      body,
      timeoutMs: 60_000,
    })
    expect(answer.status).toBe(200)
    expect(answer.body).toBe(createHash("sha256").update(body).digest("hex"))
  })

  it("resets the stream when the client goes away mid-response", async () => {
    let upstreamClosed = false
    const slow = await startHttpServer((req, res) => {
      res.writeHead(200)
      const timer = setInterval(() => res.write("tick\n"), 5)
      req.socket.on("close", () => {
        clearInterval(timer)
        upstreamClosed = true
      })
    })
    cleanups.push(slow.close)
    const slowAgent = startAgent(node.upstreamUrl, { slow: slow.port })
    cleanups.push(slowAgent.stop)
    await waitFor("agent registered", async () => (await node.upstreamCount("slow")) === 1)
    await new Promise<void>((resolve, reject) => {
      const req = http.request(
        `${node.proxyUrl}/`,
        { headers: { "x-pico-endpoint": "slow" } },
        (res: http.IncomingMessage) => {
          res.once("data", () => {
            req.destroy()
            resolve()
          })
        },
      )
      req.on("error", () => {})
      req.on("close", () => resolve())
      req.end()
      setTimeout(() => reject(new Error("no data")), 5000).unref()
    })
    await waitFor("upstream connection closed", () => upstreamClosed)
  })
})
