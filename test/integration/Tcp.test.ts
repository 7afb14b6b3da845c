import { randomBytes } from "node:crypto"
import * as net from "node:net"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import WebSocket from "ws"
import { EndpointId } from "../../src/Domain/EndpointId.js"
import { closedPort, request, startHttpServer, waitFor } from "../support/http.js"
import { startAgent, startNode, type TestNode } from "../support/node.js"
import { spawnProcess } from "../support/process.js"
import { checkWithPromtool, readMetrics, valueOf } from "../support/prometheus.js"
import {
  closing,
  connectFailure,
  connectTcp as openTcp,
  rawHandshake,
  readToEnd,
  sha256,
  startEchoService,
  startTcpAgent,
  startTcpService,
} from "../support/tcp.js"

const cleanups: Array<() => Promise<unknown>> = []
const afterTest: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const cleanup of afterTest.splice(0).reverse()) await cleanup()
})
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** One node with an agent holding `echo` (TCP) and `web` (HTTP): most tests need nothing more. */
let node: TestNode
let echoPort: number

beforeAll(async () => {
  node = await startNode()
  cleanups.push(node.close)
  const echo = await startEchoService()
  echoPort = echo.port
  cleanups.push(echo.close)
  const web = await startHttpServer((_req, res) => res.end("web"))
  cleanups.push(web.close)
  cleanups.push(startTcpAgent(node.upstreamUrl, { echo: echo.port }).stop)
  cleanups.push(startAgent(node.upstreamUrl, { web: web.port }).stop)
  await waitFor(
    "agents registered",
    async () => (await node.upstreamCount("echo")) + (await node.upstreamCount("web")) === 2,
  )
})

/** A connection to a TCP endpoint, cut after the test: one left open would hold up a node's drain. */
const connectTcp = async (proxyUrl: string, endpointId: string) => {
  const socket = await openTcp(proxyUrl, endpointId)
  afterTest.push(async () => socket.destroy())
  return socket
}

/** A TCP endpoint of its own for one test: the service, and an agent registering it on `at`. */
const tcpEndpoint = async (id: string, onConnection: (socket: net.Socket) => void, at: TestNode = node) => {
  const service = await startTcpService(onConnection)
  afterTest.push(service.close)
  afterTest.push(startTcpAgent(at.upstreamUrl, { [id]: service.port }).stop)
  await waitFor(`${id} registered`, async () => (await at.upstreamCount(id)) === 1)
  return service
}

/** Polls until `read` stops changing (a pipe that has filled up), and returns its last value. */
const settled = async (read: () => number): Promise<number> => {
  let last = -1
  await waitFor("the pipe to stop moving", async () => {
    const before = read()
    await new Promise((resolve) => setTimeout(resolve, 200))
    const now = read()
    const still = now === before && now === last
    last = now
    return still
  })
  return last
}

/** A raw handshake's answer and socket, cut after the test. */
const handshake = async (port: number, head: string) => {
  const sent = await rawHandshake(port, head)
  afterTest.push(async () => void sent.socket.destroy())
  return sent
}

describe("TCP endpoints", () => {
  it("carry bytes both ways, and the client's half-close: the service answers after the client has ended", async () => {
    const socket = await connectTcp(node.proxyUrl, "echo")
    const payload = randomBytes(3 * 1024 * 1024)
    socket.end(payload)
    const echoed = await readToEnd(socket)
    expect(sha256(echoed)).toBe(sha256(payload))
  })

  it("pass the service's half-close: the client keeps sending after the service has ended its side", async () => {
    let heard: Promise<Buffer> | undefined
    await tcpEndpoint("banner", (socket) => {
      socket.end("bye early\n")
      heard = readToEnd(socket)
    })
    const socket = await connectTcp(node.proxyUrl, "banner")
    expect((await readToEnd(socket)).toString()).toBe("bye early\n")
    socket.end("still talking")
    await waitFor("the service connection", () => heard !== undefined)
    expect((await heard)?.toString()).toBe("still talking")
  })

  it("hold back a sender whose reader does not keep up, both ways, and lose nothing", async () => {
    const size = 48 * 1024 * 1024
    const upload = randomBytes(size)
    const download = randomBytes(size)
    let service: net.Socket | undefined
    await tcpEndpoint("slow", (socket) => {
      service = socket
      socket.pause()
      socket.write(download)
    })
    const client = await connectTcp(node.proxyUrl, "slow")
    client.pause()
    client.write(upload)
    await waitFor("the service connection", () => service !== undefined)
    // Neither side reads: each writer is left holding most of what it wrote, since only the sockets' buffers
    // and one flow-control window per stream (256 KiB) lie between them.
    const clientHeld = await settled(() => client.writableLength)
    const serviceHeld = await settled(() => (service as net.Socket).writableLength)
    expect(size - clientHeld).toBeLessThan(24 * 1024 * 1024)
    expect(size - serviceHeld).toBeLessThan(24 * 1024 * 1024)

    const uploaded = readToEnd(service as net.Socket)
    const downloaded = readToEnd(client)
    service?.resume()
    client.resume()
    client.end()
    service?.end()
    expect(sha256(await uploaded)).toBe(sha256(upload))
    expect(sha256(await downloaded)).toBe(sha256(download))
  })

  it("answer a service that refuses with 502 and one that does not accept in time with 504; the tunnel carries on", async () => {
    const port = await closedPort()
    const agent = startAgent(
      node.upstreamUrl,
      {},
      { endpoints: [{ id: EndpointId("later"), host: "127.0.0.1", port, kind: "tcp" }], forwardTimeout: 300 },
    )
    afterTest.push(agent.stop)
    await waitFor("later registered", async () => (await node.upstreamCount("later")) === 1)
    expect(await connectFailure(node.proxyUrl, "later")).toMatchObject({
      reason: "refused",
      status: 502,
      message: `127.0.0.1:${node.proxyPort} answered 502: upstream unreachable`,
    })

    // A listener that never accepts: with a backlog of 0 its queue is full after one connection, and the kernel
    // leaves further SYNs unanswered.
    const stuck = spawnProcess("python3", [
      "-c",
      "import socket,sys,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\nprint('port',s.getsockname()[1],flush=True)\ntime.sleep(600)",
    ])
    afterTest.push(stuck.stop)
    await waitFor("the stuck listener", () => /^port \d+\n/.test(stuck.text()))
    const stuckPort = Number(stuck.text().slice(5))
    const filler = net.connect(stuckPort, "127.0.0.1")
    afterTest.push(async () => filler.destroy())
    await new Promise((resolve) => filler.once("connect", resolve))
    const stuckAgent = startAgent(
      node.upstreamUrl,
      {},
      {
        endpoints: [{ id: EndpointId("stuck"), host: "127.0.0.1", port: stuckPort, kind: "tcp" }],
        forwardTimeout: 300,
      },
    )
    afterTest.push(stuckAgent.stop)
    await waitFor("stuck registered", async () => (await node.upstreamCount("stuck")) === 1)
    expect(await connectFailure(node.proxyUrl, "stuck")).toMatchObject({ reason: "refused", status: 504 })

    // The same session takes the next connection once the service is up.
    const service = net.createServer((socket) => socket.end("up now"))
    await new Promise<void>((resolve) => service.listen(port, "127.0.0.1", resolve))
    afterTest.push(() => new Promise((resolve) => service.close(resolve)))
    expect((await readToEnd(await connectTcp(node.proxyUrl, "later"))).toString()).toBe("up now")
    expect(await node.upstreamCount("later")).toBe(1)
  })

  it("tell a client that asks for the wrong kind, with Pico's JSON error, and nothing reaches the endpoint", async () => {
    const http = await request(node.proxyUrl, { headers: { "x-pico-endpoint": "echo" } })
    expect([http.status, JSON.parse(http.body), http.headers.upgrade, http.headers["x-pico-error"]]).toEqual([
      426,
      { error: "endpoint is tcp" },
      "pico-tcp",
      "endpoint is tcp",
    ])
    const ws = new WebSocket(node.proxyUrl.replace("http", "ws"), { headers: { "x-pico-endpoint": "echo" } })
    const refused = await new Promise<number>((resolve) =>
      ws.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0)),
    )
    expect(refused).toBe(426)
    expect(await connectFailure(node.proxyUrl, "web")).toMatchObject({
      reason: "refused",
      status: 400,
      message: `127.0.0.1:${node.proxyPort} answered 400: endpoint is http`,
    })
    const other = await handshake(
      node.proxyPort,
      "GET / HTTP/1.1\r\nHost: x\r\nx-pico-endpoint: echo\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    )
    expect(other.answer).toMatch(/^HTTP\/1\.1 400 /)
    other.socket.destroy()
    expect((await connectFailure(node.proxyUrl, "nobody")).status).toBe(503)
  })

  it("take the endpoint from the path or from x-pico-endpoint: the handshake of docs/protocol.md", async () => {
    for (const head of [
      "GET /pico/v1/tcp/echo HTTP/1.1\r\nHost: pico.example.com\r\nConnection: Upgrade\r\nUpgrade: pico-tcp\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: pico.example.com\r\nConnection: Upgrade\r\nUpgrade: pico-tcp\r\nx-pico-endpoint: echo\r\n\r\nearly bytes ",
    ]) {
      const { answer, socket } = await handshake(node.proxyPort, head)
      expect(answer).toBe(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: pico-tcp\r\n\r\n",
      )
      socket.end("then the rest")
      const echoed = (await readToEnd(socket)).toString()
      expect(echoed).toBe(head.endsWith("early bytes ") ? "early bytes then the rest" : "then the rest")
    }
    // The path names the endpoint for a pico-tcp upgrade only: anything else there is routed as any request.
    for (const upgrade of ["Connection: Upgrade\r\nUpgrade: websocket\r\n", ""]) {
      const { answer, socket } = await handshake(
        node.proxyPort,
        `GET /pico/v1/tcp/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n${upgrade}\r\n`,
      )
      expect(answer).toMatch(/^HTTP\/1\.1 400 [\s\S]*\r\nx-pico-error: missing pico endpoint id\r\n/i)
      socket.destroy()
    }
  })

  it("refuse an agent registering an endpoint as the other kind (409), and keep the first", async () => {
    const response = await request(`${node.upstreamUrl}/pico/v1/listener/echo`, {
      headers: {
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      },
    })
    expect([response.status, JSON.parse(response.body)]).toEqual([
      409,
      { error: "endpoint echo is already connected as tcp" },
    ])
    const kind = await request(`${node.upstreamUrl}/pico/v1/listener/echo?kind=udp`, {
      headers: { connection: "Upgrade", upgrade: "websocket" },
    })
    expect([kind.status, JSON.parse(kind.body)]).toEqual([
      400,
      { error: "invalid endpoint kind: expected http or tcp" },
    ])
    expect(await node.upstreamCount("echo")).toBe(1)
  })

  it("count open connections and bytes each way on the node holding the endpoint, for status and metrics", async () => {
    await tcpEndpoint("counted", (socket) => {
      socket.write(Buffer.alloc(1000, 1))
      socket.resume()
      socket.on("end", () => socket.end())
    })
    const tcpStatus = async () =>
      JSON.parse((await request(`${node.adminUrl}/status/proxy/tcp`)).body).counted
    expect(await tcpStatus()).toEqual({
      connections: 0,
      connections_total: 0,
      bytes_from_clients: 0,
      bytes_to_clients: 0,
    })
    const first = await connectTcp(node.proxyUrl, "counted")
    const second = await connectTcp(node.proxyUrl, "counted")
    first.write(Buffer.alloc(300, 2))
    await waitFor("bytes counted", async () => (await tcpStatus()).bytes_from_clients === 300)
    expect(await tcpStatus()).toMatchObject({ connections: 2, connections_total: 2 })
    const page = (await request(`${node.adminUrl}/metrics`)).body
    expect(checkWithPromtool(page)).toBe("")
    const metrics = readMetrics(page)
    expect(valueOf(metrics, "pico_proxy_tcp_connections", { endpoint_id: "counted" })).toBe(2)
    // Each connection was a request answered 101, not one whose client left (499).
    expect(valueOf(metrics, "pico_proxy_requests_total", { status: "101" })).toBeGreaterThanOrEqual(2)
    expect(valueOf(metrics, "pico_proxy_tcp_connections", { endpoint_id: "echo" })).toBe(0)

    first.end()
    second.end()
    await Promise.all([readToEnd(first), readToEnd(second)])
    await waitFor("connections closed", async () => (await tcpStatus()).connections === 0)
    expect(await tcpStatus()).toEqual({
      connections: 0,
      connections_total: 2,
      bytes_from_clients: 300,
      bytes_to_clients: 2000,
    })
    const after = readMetrics((await request(`${node.adminUrl}/metrics`)).body)
    expect(valueOf(after, "pico_proxy_tcp_connections_total", { endpoint_id: "counted" })).toBe(2)
    expect(
      valueOf(after, "pico_proxy_tcp_bytes_total", { endpoint_id: "counted", direction: "from_client" }),
    ).toBe(300)
    expect(
      valueOf(after, "pico_proxy_tcp_bytes_total", { endpoint_id: "counted", direction: "to_client" }),
    ).toBe(2000)
    // HTTP endpoints have no TCP series.
    expect(
      after.get("pico_proxy_tcp_connections")?.samples.some((sample) => sample.labels.endpoint_id === "web"),
    ).toBe(false)
  })

  it("end only the connection whose service resets mid-stream, or that sends its service garbage", async () => {
    await tcpEndpoint("fragile", (socket) =>
      socket.on("data", (chunk: Buffer) => {
        // A line protocol: "reset" makes it fail hard, anything it cannot read makes it hang up.
        if (socket.writableEnded) return
        if (chunk.toString() === "reset\n") socket.resetAndDestroy()
        else if (chunk.toString() !== "ok\n") socket.end("bad input\n")
        else socket.write("ok\n")
      }),
    )
    const survivor = await connectTcp(node.proxyUrl, "fragile")
    const reset = await connectTcp(node.proxyUrl, "fragile")
    const garbage = await connectTcp(node.proxyUrl, "fragile")
    const resetEnded = closing(reset)
    reset.write("reset\n")
    garbage.write(randomBytes(512))
    const garbageAnswer = readToEnd(garbage)
    expect(await resetEnded).toBe("ECONNRESET")
    expect((await garbageAnswer).toString()).toBe("bad input\n")
    const answer = new Promise<string>((resolve) =>
      survivor.once("data", (chunk: Buffer) => resolve(chunk.toString())),
    )
    survivor.write("ok\n")
    expect(await answer).toBe("ok\n")
    survivor.destroy()
  })
})

describe("TCP endpoints in a cluster", () => {
  it("carry a connection entering another node one hop to the endpoint's node, which counts it", async () => {
    const second = await startNode({ "gossip.interval": "50ms", "cluster.join": [node.gossipAddr] })
    afterTest.push(second.close)
    await waitFor("second routes echo", () => second.routesRemotely("echo") && second.routesRemotely("web"))
    const before = JSON.parse((await request(`${node.adminUrl}/status/proxy/tcp`)).body).echo
      .connections_total
    const socket = await connectTcp(second.proxyUrl, "echo")
    socket.end("across the cluster")
    expect((await readToEnd(socket)).toString()).toBe("across the cluster")
    expect(JSON.parse((await request(`${node.adminUrl}/status/proxy/tcp`)).body).echo.connections_total).toBe(
      before + 1,
    )
    expect(JSON.parse((await request(`${second.adminUrl}/status/proxy/tcp`)).body)).toEqual({})

    // The entry node knows the kinds from gossip, and refuses the wrong one itself, without a hop.
    const forwards = async () =>
      valueOf(
        readMetrics((await request(`${second.adminUrl}/metrics`)).body),
        "pico_proxy_forwarded_remote_total",
        {
          node_id: node.nodeId,
        },
      )
    const hops = await forwards()
    expect((await request(second.proxyUrl, { headers: { "x-pico-endpoint": "echo" } })).status).toBe(426)
    expect((await connectFailure(second.proxyUrl, "web")).status).toBe(400)
    expect(await forwards()).toBe(hops)
  })

  it("keeps a TCP connection open through a drain until the grace period ends, then ends it with FIN", async () => {
    const draining = await startNode({ "server.graceful-shutdown-timeout": "2s" })
    afterTest.push(draining.close)
    afterTest.push(startTcpAgent(draining.upstreamUrl, { echo: echoPort }).stop)
    await waitFor("echo registered", async () => (await draining.upstreamCount("echo")) === 1)
    const socket = await connectTcp(draining.proxyUrl, "echo")
    const ended = new Promise<{ how: string; at: number }>(
      (resolve) => void closing(socket).then((how) => resolve({ how, at: Date.now() })),
    )
    const echo = (text: string) =>
      new Promise<string>((resolve) => {
        socket.once("data", (chunk: Buffer) => resolve(chunk.toString()))
        socket.write(text)
      })
    expect(await echo("before")).toBe("before")
    const drainStarted = Date.now()
    const closed = draining.close()
    await waitFor("draining", async () => (await request(`${draining.adminUrl}/ready`)).status === 503)
    expect(await echo("while draining")).toBe("while draining")
    const { how, at } = await ended
    expect(how).toBe("end")
    expect(at - drainStarted).toBeGreaterThanOrEqual(1500)
    await closed
  })
})
