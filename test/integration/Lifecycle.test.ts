import * as net from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import WebSocket from "ws"
import { accepts, request, startHttpServer, waitFor } from "../support/http.js"
import { startLoadBalancer } from "../support/loadBalancer.js"
import { startAgent, startNode } from "../support/node.js"

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/**
 * A local service that holds each /hold request until the test releases it, and sends a /stream response's head
 * and first half at once and its second half on release.
 */
const startHoldingService = async () => {
  const held: Array<() => void> = []
  const service = await startHttpServer((req, res) => {
    const respond = () => res.end(`done ${req.url}`)
    if (req.url?.startsWith("/hold")) held.push(respond)
    else if (req.url?.startsWith("/stream")) {
      res.writeHead(200, { "content-length": "4" })
      res.write("ab")
      held.push(() => res.end("cd"))
    } else respond()
  })
  cleanups.push(service.close)
  return {
    port: service.port,
    held,
    releaseAll: () => {
      for (const release of held.splice(0)) release()
    },
  }
}

/** A node whose endpoint (by default "e") is a holding service's, its agent registered. */
const startNodeWithService = async (endpointId = "e") => {
  const service = await startHoldingService()
  const node = await startNode()
  cleanups.push(node.close)
  const agent = startAgent(node.upstreamUrl, { [endpointId]: service.port })
  cleanups.push(agent.stop)
  await waitFor("agent registered", async () => (await node.upstreamCount(endpointId)) === 1)
  return { service, node }
}

/** A GET on a raw connection, kept alive, for the endpoint in the Host header. */
const requestHead = (path: string, endpointId = "e") =>
  `GET ${path} HTTP/1.1\r\nHost: ${endpointId}\r\nx-pico-endpoint: ${endpointId}\r\n\r\n`

/** Everything a raw connection receives, and when it closes. */
const received = (socket: net.Socket) => {
  let text = ""
  socket.on("data", (chunk: Buffer) => {
    text += chunk.toString("latin1")
  })
  return { text: () => text, closed: new Promise((resolve) => socket.once("close", resolve)) }
}

const connect = (port: number) =>
  new Promise<net.Socket>((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => resolve(socket)).once("error", reject)
  })

describe("graceful shutdown", () => {
  it("finishes in-flight requests, turns /ready 503 and stops accepting", async () => {
    const { service, node } = await startNodeWithService()
    expect((await request(`${node.adminUrl}/ready`)).status).toBe(200)

    const inFlight = Array.from({ length: 10 }, (_, i) =>
      request(`${node.proxyUrl}/hold/${i}`, { headers: { "x-pico-endpoint": "e" } }),
    )
    await waitFor("requests reached the service", () => service.held.length === 10)
    const closed = node.close()
    await waitFor("readiness off", async () => (await request(`${node.adminUrl}/ready`)).status === 503)
    await expect(request(`${node.proxyUrl}/new`, { headers: { "x-pico-endpoint": "e" } })).rejects.toThrow(
      /ECONNREFUSED/,
    )

    service.releaseAll()
    const responses = await Promise.all(inFlight)
    expect(responses.map((response) => response.status)).toEqual(Array(10).fill(200))
    expect(responses.map((response) => response.body)).toEqual(responses.map((_, i) => `done /hold/${i}`))
    await closed
  })

  it("answers a connection it accepted before it stopped accepting, and closes kept-alive ones", async () => {
    const { node } = await startNodeWithService()

    // A balancer's connections for requests it is about to send: opened before the drain, requests sent after,
    // one answered by the service and one by Pico itself (no such endpoint). Nothing is in flight, so only they
    // keep the node from finishing its drain.
    const fresh = await connect(node.proxyPort)
    const freshReceived = received(fresh)
    const freshError = await connect(node.proxyPort)
    const freshErrorReceived = received(freshError)
    // A kept-alive connection, idle after its first request.
    const keptAlive = await connect(node.proxyPort)
    const keptAliveReceived = received(keptAlive)
    keptAlive.write(requestHead("/first"))
    await waitFor("the first response", () => keptAliveReceived.text().endsWith("done /first"))

    const closed = node.close()
    await waitFor("the proxy port stopped accepting", async () => !(await accepts(node.proxyPort)))
    await keptAliveReceived.closed
    fresh.write(requestHead("/fresh"))
    await freshReceived.closed
    expect(freshReceived.text()).toMatch(/^HTTP\/1\.1 200 /)
    expect(freshReceived.text().toLowerCase()).toContain("connection: close")
    expect(freshReceived.text()).toMatch(/done \/fresh$/)
    freshError.write(requestHead("/", "nobody"))
    await freshErrorReceived.closed
    expect(freshErrorReceived.text()).toMatch(/^HTTP\/1\.1 503 /)
    expect(freshErrorReceived.text().toLowerCase()).toContain("connection: close")
    await closed
  })

  it("closes a kept-alive connection as soon as a response begun before the drain ends", async () => {
    const { service, node } = await startNodeWithService()

    const socket = await connect(node.proxyPort)
    const got = received(socket)
    socket.write(requestHead("/stream"))
    await waitFor("the head and half the body", () => got.text().endsWith("\r\n\r\nab"))
    expect(got.text().toLowerCase()).not.toContain("connection: close")

    const closed = node.close()
    await waitFor("the proxy port stopped accepting", async () => !(await accepts(node.proxyPort)))
    service.releaseAll()
    // Kept alive, it would hold the drain for the idle timeout; it is closed once its response has ended.
    await got.closed
    expect(got.text()).toMatch(/abcd$/)
    await closed
  })

  it("moves the agent to another node before the old one drains, losing no request", async () => {
    const service = await startHoldingService()
    const nodeA = await startNode()
    const nodeB = await startNode()
    cleanups.push(nodeB.close, nodeA.close)
    const balancer = await startLoadBalancer(() => [nodeA.upstreamPort, nodeB.upstreamPort])
    cleanups.push(balancer.close)
    const agent = startAgent(`http://127.0.0.1:${balancer.port}`, { e: service.port })
    cleanups.push(agent.stop)
    await waitFor("agent on node A", async () => (await nodeA.upstreamCount("e")) === 1)

    const held = request(`${nodeA.proxyUrl}/hold/a`, { headers: { "x-pico-endpoint": "e" } })
    await waitFor("request reached the service", () => service.held.length === 1)
    const drained = nodeA.close()
    await waitFor("agent also on node B", async () => (await nodeB.upstreamCount("e")) === 1)
    // Node A is still draining its in-flight request while B already serves new ones.
    const onB = await request(`${nodeB.proxyUrl}/b`, { headers: { "x-pico-endpoint": "e" } })
    expect(onB.status).toBe(200)
    service.releaseAll()
    expect((await held).status).toBe(200)
    await drained
  })
})

describe("agent reconnects", () => {
  it("after the server restarts on the same address", async () => {
    const service = await startHoldingService()
    const first = await startNode()
    const upstreamAddr = `127.0.0.1:${first.upstreamPort}`
    const agent = startAgent(first.upstreamUrl, { e: service.port })
    cleanups.push(agent.stop)
    await waitFor("agent registered", async () => (await first.upstreamCount("e")) === 1)
    await first.close()

    const second = await startNode({ "upstream.bind-addr": upstreamAddr })
    cleanups.push(second.close)
    await waitFor("agent re-registered", async () => (await second.upstreamCount("e")) === 1, 15_000)
    const response = await request(`${second.proxyUrl}/again`, { headers: { "x-pico-endpoint": "e" } })
    expect(response.body).toBe("done /again")
  })
})

describe("bad upstream input", () => {
  const openRaw = (url: string) =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(url)
      ws.once("open", () => resolve(ws))
      ws.once("error", reject)
    })
  const closedWithin = (ws: WebSocket) => new Promise<void>((resolve) => ws.once("close", () => resolve()))

  it("closes only the session that sent a malformed frame or a text message", async () => {
    const { node } = await startNodeWithService("good")

    const garbage = await openRaw(`ws://127.0.0.1:${node.upstreamPort}/pico/v1/listener/bad`)
    await waitFor("bad session registered", async () => (await node.upstreamCount("bad")) === 1)
    const garbageClosed = closedWithin(garbage)
    garbage.send(Buffer.from([9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]))
    await garbageClosed

    const text = await openRaw(`ws://127.0.0.1:${node.upstreamPort}/pico/v1/listener/bad`)
    const textClosed = closedWithin(text)
    text.send("not binary")
    await textClosed
    await waitFor("bad sessions unregistered", async () => (await node.upstreamCount("bad")) === 0)

    const response = await request(`${node.proxyUrl}/still-fine`, { headers: { "x-pico-endpoint": "good" } })
    expect(response.body).toBe("done /still-fine")
  })

  it("refuses an invalid endpoint id with a 400 before upgrading", async () => {
    const node = await startNode()
    cleanups.push(node.close)
    const ws = new WebSocket(`ws://127.0.0.1:${node.upstreamPort}/pico/v1/listener/bad%20id`)
    const response = await new Promise<{ status: number; body: string }>((resolve) =>
      ws.on("unexpected-response", (_req, res) => {
        let body = ""
        res.on("data", (chunk: Buffer) => (body += chunk.toString()))
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
      }),
    )
    expect(response.status).toBe(400)
    expect(JSON.parse(response.body).error).toMatch(/^invalid endpoint id/)
    const notFound = await request(`${node.upstreamUrl}/elsewhere`)
    expect(notFound.status).toBe(404)
    expect(JSON.parse(notFound.body)).toEqual({ error: "not found" })
  })
})

describe("gateway timeout", () => {
  it("answers 504 when headers are late, but lets a started body stream longer", async () => {
    const service = await startHttpServer((req, res) => {
      if (req.url === "/late") return void setTimeout(() => res.end("too late"), 1000)
      res.writeHead(200)
      res.write("first ")
      setTimeout(() => res.end("and last"), 600)
    })
    cleanups.push(service.close)
    const node = await startNode({ "proxy.gateway-timeout": "300ms" })
    cleanups.push(node.close)
    const agent = startAgent(node.upstreamUrl, { e: service.port })
    cleanups.push(agent.stop)
    await waitFor("agent registered", async () => (await node.upstreamCount("e")) === 1)

    const late = await request(`${node.proxyUrl}/late`, { headers: { "x-pico-endpoint": "e" } })
    expect(late.status).toBe(504)
    expect(JSON.parse(late.body)).toEqual({ error: "endpoint timeout" })
    const streaming = await request(`${node.proxyUrl}/stream`, { headers: { "x-pico-endpoint": "e" } })
    expect(streaming.status).toBe(200)
    expect(streaming.body).toBe("first and last")
  })
})

describe("addresses on the default dual-stack ports", () => {
  it("are shown as IPv4 for IPv4 peers, not IPv4-mapped IPv6", async () => {
    // ":0" is what the defaults (":8001") are: every interface, IPv6 sockets taking IPv4 clients too.
    const node = await startNode({ "upstream.bind-addr": ":0", "proxy.bind-addr": ":0" })
    cleanups.push(node.close)
    const service = await startHttpServer((req, res) => res.end(String(req.headers["x-forwarded-for"])))
    cleanups.push(service.close)
    const agent = startAgent(node.upstreamUrl, { dual: service.port })
    cleanups.push(agent.stop)
    await waitFor("agent registered", async () => (await node.upstreamCount("dual")) === 1)
    const endpoints = JSON.parse((await request(`${node.adminUrl}/status/proxy/endpoints`)).body)
    expect(endpoints.dual).toEqual([expect.stringMatching(/^127\.0\.0\.1:\d+$/)])
    const answer = await request(`${node.proxyUrl}/`, { headers: { "x-pico-endpoint": "dual" } })
    expect(answer.body).toBe("127.0.0.1")
  })
})
