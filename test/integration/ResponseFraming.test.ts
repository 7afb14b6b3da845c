import * as net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { request, startHttpServer, waitFor } from "../support/http.js"
import { startAgent, startNode, type TestAgent, type TestNode } from "../support/node.js"

/**
 * The proxy reads services' responses off tunnel streams with Node's parser but without Node's HTTP client, and
 * reuses the streams (HttpConnections). These tests drive a service that writes raw bytes, so every framing rule
 * a shortcut could get wrong is tried through real sockets: the client gets exactly the response, a malformed
 * one is refused with 502 and its connection dropped, and the next request is never served leftovers.
 */

/** What the service writes for each request path; it answers each request head as it arrives. */
const responses: Record<string, string | ((socket: net.Socket) => void)> = {
  "/ok": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
  "/chunked":
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
  "/until-close": (socket) => socket.end("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"),
  "/head": "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
  "/informational":
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
  "/no-content": "HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\n",
  "/two-lengths": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
  "/length-and-chunked":
    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  "/bad-header": "HTTP/1.1 200 OK\r\nX-Bad: a\x01b\r\nContent-Length: 2\r\n\r\nok",
  "/coded": (socket) => socket.end("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b gzip bytes"),
  "/coded-chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\n\x1f\x8b!\r\n0\r\n\r\n",
  "/chunked-twice":
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
  "/head-coded": "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
  "/not-modified-coded": "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: gzip\r\n\r\n",
  "/bad-chunk": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nmore\r\n",
  "/extra":
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nextra!",
  "/big-head": `HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(20_000)}\r\nContent-Length: 0\r\n\r\n`,
  "/switch": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: other\r\nConnection: Upgrade\r\n\r\n",
  "/control-in-reason": "HTTP/1.1 200 O\x7fK\x01\r\nContent-Length: 2\r\n\r\nok",
  "/status-000": "HTTP/1.1 000 OK\r\nContent-Length: 2\r\n\r\nok",
  "/claims-pico-error":
    "HTTP/1.1 503 Service Unavailable\r\nX-Pico-Error: endpoint not found\r\nContent-Length: 4\r\n\r\nbusy",
  "/many-headers": `HTTP/1.1 200 OK\r\n${Array.from({ length: 40 }, (_, i) => `X-H${i}: ${i}\r\n`).join("")}Content-Length: 2\r\n\r\nok`,
}

let node: TestNode
let agent: TestAgent
let service: net.Server
let servicePort = 0
let opened = 0
let closed = 0
/** The path of every request the service has read, and each path's last request head as it arrived. */
const served: Array<string> = []
const heads = new Map<string, string>()
let bodies: Awaited<ReturnType<typeof startHttpServer>>

beforeAll(async () => {
  service = net.createServer((socket) => {
    opened++
    socket.on("close", () => closed++)
    socket.on("error", () => {})
    let received = ""
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString("latin1")
      for (let end = received.indexOf("\r\n\r\n"); end >= 0; end = received.indexOf("\r\n\r\n")) {
        const path = received.slice(0, end).split(" ")[1] ?? ""
        served.push(path)
        heads.set(path, received.slice(0, end))
        received = received.slice(end + 4)
        const answer = responses[path] ?? "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        if (typeof answer === "string") socket.write(answer, "latin1")
        else answer(socket)
      }
    })
  })
  await new Promise<void>((resolve) => service.listen(0, "127.0.0.1", resolve))
  servicePort = (service.address() as net.AddressInfo).port
  // Echoes what arrived, framing headers included, for the request-body cases.
  bodies = await startHttpServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () =>
      res.end(
        JSON.stringify({
          length: req.headers["content-length"] ?? null,
          encoding: req.headers["transfer-encoding"] ?? null,
          body: Buffer.concat(chunks).toString("utf8"),
          // The header's bytes as they arrived (Node's parser gives one character per byte).
          ...(req.headers["x-name"] === undefined
            ? {}
            : { name: Buffer.from(req.headers["x-name"] as string, "latin1").toString("hex") }),
        }),
      ),
    )
  })
  node = await startNode()
  agent = startAgent(node.upstreamUrl, { raw: servicePort, echo: bodies.port })
  await waitFor("agent registered", async () => (await node.upstreamCount("echo")) === 1)
})

afterAll(async () => {
  await agent.stop()
  await node.close()
  await bodies.close()
  await new Promise((resolve) => service.close(resolve))
})

const get = (path: string, method = "GET") =>
  request(`${node.proxyUrl}${path}`, { method, headers: { "x-pico-endpoint": "raw" }, timeoutMs: 10_000 })

/** The service's connections that have closed, once `count` have. */
const closedReach = (count: number) =>
  waitFor(`${count} service connections closed`, async () => closed >= count)

describe("responses read off tunnel streams", () => {
  it("writes the request head docs/protocol.md §8 describes: no Connection, X-Request-Id and X-Forwarded-* added", async () => {
    const response = await request(`${node.proxyUrl}/ok`, {
      headers: {
        "x-pico-endpoint": "raw",
        "X-Custom": "kept",
        Connection: "keep-alive, X-Hop",
        "X-Hop": "dropped",
      },
    })
    expect(response.status).toBe(200)
    const [requestLine, ...lines] = (heads.get("/ok") ?? "").split("\r\n")
    expect(requestLine).toBe("GET /ok HTTP/1.1")
    const names = lines.map((line) => line.slice(0, line.indexOf(":")).toLowerCase())
    expect(names).not.toContain("connection")
    expect(names).not.toContain("x-hop")
    expect(names).toEqual(expect.arrayContaining(["host", "x-pico-endpoint", "x-custom", "x-request-id"]))
    expect(names.slice(-3)).toEqual(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"])
    expect(lines).toContain("X-Custom: kept")
  })

  it("relays a chunked body, a body that ends with the connection, and 1xx heads skipped", async () => {
    expect(await get("/chunked")).toMatchObject({ status: 200, body: "hello world" })
    const untilClose = await get("/until-close")
    expect(untilClose).toMatchObject({ status: 200, body: "all of it" })
    expect(await get("/informational")).toMatchObject({ status: 200, body: "ok" })
  })

  it("sends no body for HEAD or 204, and the kept connection serves the next request", async () => {
    const before = opened
    const head = await get("/head", "HEAD")
    expect(head.status).toBe(200)
    expect(head.headers["content-length"]).toBe("5")
    expect(await get("/no-content")).toMatchObject({ status: 204, body: "" })
    expect(await get("/ok")).toMatchObject({ status: 200, body: "ok" })
    expect(opened - before).toBeLessThanOrEqual(1)
  })

  it("relays the coding a bodiless response names (HEAD, 304): there is no body to misread", async () => {
    expect((await get("/head-coded", "HEAD")).status).toBe(200)
    expect((await get("/not-modified-coded")).status).toBe(304)
  })

  it("reads a head of more than 32 headers whole", async () => {
    const response = await get("/many-headers")
    expect(response.body).toBe("ok")
    expect(response.headers["x-h0"]).toBe("0")
    expect(response.headers["x-h39"]).toBe("39")
  })

  it.each([
    ["two Content-Lengths", "/two-lengths"],
    ["Content-Length beside Transfer-Encoding", "/length-and-chunked"],
    ["a control character in a header", "/bad-header"],
    ["a head over 16 KiB", "/big-head"],
    ["101 to a request that asked for no upgrade", "/switch"],
    ["a status code under 100, which is no informational response", "/status-000"],
    ["a body in a transfer coding other than chunked, ending with the connection", "/coded"],
    ["a coding under chunked, which the client would get unannounced", "/coded-chunked"],
    ["Transfer-Encoding given twice, which nginx refuses too", "/chunked-twice"],
  ])("answers 502 for %s, drops that connection, and serves the next request", async (_what, path) => {
    const closedBefore = closed
    const response = await get(path)
    expect(response.status).toBe(502)
    expect(JSON.parse(response.body)).toEqual({ error: "upstream unreachable" })
    // The service answered, if badly: sending the request again could run it twice.
    expect(served.filter((seen) => seen === path)).toHaveLength(1)
    await closedReach(closedBefore + 1)
    expect(await get("/ok")).toMatchObject({ status: 200, body: "ok" })
  })

  it("relays a service's own 503 without the x-pico-error it claims: only Pico speaks for Pico", async () => {
    const response = await get("/claims-pico-error")
    expect(response).toMatchObject({ status: 503, body: "busy" })
    expect(response.headers["x-pico-error"]).toBeUndefined()
  })

  it("relays a status line whose reason phrase Node would refuse with the status's own phrase", async () => {
    const socket = net.connect(node.proxyPort, "127.0.0.1")
    let answer = ""
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString("latin1")
    })
    socket.write("GET /control-in-reason HTTP/1.1\r\nHost: raw.test\r\nConnection: close\r\n\r\n")
    await new Promise((resolve) => socket.on("close", resolve))
    expect(answer.startsWith("HTTP/1.1 200 OK\r\n")).toBe(true)
    expect(answer.endsWith("\r\n\r\nok")).toBe(true)
  })

  it.each([
    ["/control-in-reason", "HTTP/1.1 200 OK\r\n"],
    ["/status-000", "HTTP/1.1 502 Bad Gateway\r\n"],
    ["/coded", "HTTP/1.1 502 Bad Gateway\r\n"],
    ["/coded-chunked", "HTTP/1.1 502 Bad Gateway\r\n"],
  ])(
    "answers a WebSocket upgrade that gets %s (Node's client, not the tunnel's reader) with %j",
    async (path, line) => {
      const socket = net.connect(node.proxyPort, "127.0.0.1")
      let answer = ""
      socket.on("data", (chunk: Buffer) => {
        answer += chunk.toString("latin1")
      })
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: raw.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
      )
      await new Promise((resolve) => socket.on("close", resolve))
      expect(answer.startsWith(line)).toBe(true)
    },
  )

  it("cuts the client's connection when a chunked body goes bad midway, never ending it as complete", async () => {
    await expect(get("/bad-chunk")).rejects.toThrow()
    expect(await get("/ok")).toMatchObject({ status: 200, body: "ok" })
  })

  it("never gives a second response the service sent unasked to the next request", async () => {
    const closedBefore = closed
    expect(await get("/extra")).toMatchObject({ status: 200, body: "ok" })
    await closedReach(closedBefore + 1)
    expect(await get("/ok")).toMatchObject({ status: 200, body: "ok" })
  })
})

describe("request bodies written on tunnel streams", () => {
  const post = (headers: Record<string, string>, body: string | Array<string>) =>
    new Promise<string>((resolve, reject) => {
      const socket = net.connect(node.proxyPort, "127.0.0.1")
      let answer = ""
      socket.on("data", (chunk: Buffer) => {
        answer += chunk.toString("utf8")
      })
      socket.on("end", () => resolve(answer))
      socket.on("error", reject)
      const head = Object.entries({
        host: "echo.test",
        "x-pico-endpoint": "echo",
        connection: "close",
        ...headers,
      })
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join("")
      socket.write(Buffer.from(`POST /upload HTTP/1.1\r\n${head}\r\n`, "utf8"))
      for (const piece of typeof body === "string" ? [body] : body) socket.write(piece)
    })
  const echoed = (answer: string) => JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4))

  it("sends a Content-Length body as it came", async () => {
    const answer = await post({ "content-length": "11" }, "hello world")
    expect(echoed(answer)).toEqual({ length: "11", encoding: null, body: "hello world" })
  })

  it("passes a header's bytes through unchanged, whatever they encode", async () => {
    const answer = await post({ "content-length": "0", "x-name": "café 東京" }, "")
    expect(echoed(answer).name).toBe(Buffer.from("café 東京", "utf8").toString("hex"))
  })

  it("sends a chunked body chunked again, whatever its chunk extensions and trailers", async () => {
    const answer = await post({ "transfer-encoding": "chunked" }, [
      "5;name=value\r\nhello\r\n",
      "6\r\n world\r\n",
      "0\r\nX-Trailer: t\r\n\r\n",
    ])
    expect(echoed(answer)).toEqual({ length: null, encoding: "chunked", body: "hello world" })
  })
})
