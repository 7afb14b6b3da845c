import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import WebSocket, { WebSocketServer } from "ws"
import { closedPort, rawExchange, request, startHttpServer, waitFor } from "../support/http.js"
import { startAgent, startNode, type TestAgent, type TestNode } from "../support/node.js"
import { hmacSecret, hmacToken, newClusterKey } from "../support/tokens.js"

type Line = Record<string, unknown>

const dir = mkdtempSync(join(tmpdir(), "pico-access-"))
const cleanups: Array<() => Promise<void>> = []
let entry: TestNode
let holder: TestNode
let token: string
const secrets = { cookie: "session=cookie-secret-4711", query: "api_key=query-secret-0815" }

/** The access log lines a node has written to its file so far. */
const linesOf = (file: string): Array<Line> =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Line)

/** Waits for the line with this request id (the log is written at the end of each tick). */
const lineFor = async (file: string, requestId: string): Promise<Line> => {
  await waitFor(`access log line ${requestId}`, () =>
    linesOf(file).some((line) => line["request-id"] === requestId),
  )
  const lines = linesOf(file).filter((line) => line["request-id"] === requestId)
  expect(lines, `one line for ${requestId}`).toHaveLength(1)
  return lines[0] as Line
}

const files = { entry: join(dir, "entry.log"), holder: join(dir, "holder.log") }

beforeAll(async () => {
  const service = await startHttpServer((req, res) => {
    if (req.url?.startsWith("/slow")) return // never answers: the gateway timeout's case
    if (req.url?.startsWith("/cut")) {
      // The head and a piece of a chunked body, then the connection dies.
      res.writeHead(200)
      return void res.write("a piece", () => res.socket?.destroy())
    }
    let body = ""
    req.on("data", (chunk: Buffer) => {
      body += chunk.toString()
    })
    req.on("end", () => res.end(`seen ${req.headers["x-request-id"]} ${body}`))
  })
  cleanups.push(service.close)
  const wsServer = new WebSocketServer({ server: service.server })
  wsServer.on("connection", (ws) => ws.on("message", (data) => ws.send(data)))
  // Proxy auth on, so a real token travels with the requests; a cluster key, so the hop is proved.
  const cluster = {
    "gossip.interval": "50ms",
    "gossip.secret-key": [newClusterKey()],
    "proxy.auth.token-hmac-secret-key": hmacSecret,
    "proxy.gateway-timeout": "1s",
  }
  holder = await startNode({ ...cluster, "access-log.enabled": true, "access-log.file": files.holder })
  cleanups.push(holder.close)
  entry = await startNode({
    ...cluster,
    "access-log.enabled": true,
    "access-log.file": files.entry,
    "cluster.join": [holder.gossipAddr],
  })
  cleanups.push(entry.close)
  const agents: Array<TestAgent> = [
    startAgent(holder.upstreamUrl, { e: service.port }),
    startAgent(entry.upstreamUrl, { local: service.port, refused: await closedPort() }),
  ]
  for (const agent of agents) cleanups.push(agent.stop)
  await waitFor(
    "routes known",
    async () => entry.routesRemotely("e") && (await entry.upstreamCount("refused")) === 1,
  )
  token = await hmacToken()
})

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
  rmSync(dir, { recursive: true, force: true })
})

/** A request with every kind of secret a client sends: a proxy token, a cookie, a key in the query. */
const send = (endpoint: string | undefined, path: string, requestId: string, body?: string) =>
  request(`${entry.proxyUrl}${path}?${secrets.query}`, {
    method: body === undefined ? "GET" : "POST",
    headers: {
      ...(endpoint === undefined ? {} : { "x-pico-endpoint": endpoint }),
      authorization: `Bearer ${token}`,
      cookie: secrets.cookie,
      "x-request-id": requestId,
    },
    ...(body === undefined ? {} : { body }),
  })

/** No line of either node holds the token, the cookie or the query. */
const noSecretLogged = () => {
  for (const file of [files.entry, files.holder]) {
    const text = readFileSync(file, "utf8")
    for (const secret of [token, secrets.cookie, secrets.query, "cookie-secret", "query-secret"])
      expect(text).not.toContain(secret)
  }
}

describe("the access log", () => {
  it("writes one line for a local request, with every field", async () => {
    const answer = await send("local", "/hello", "rid-local", "twelve bytes")
    expect(answer.body).toBe("seen rid-local twelve bytes")
    const line = await lineFor(files.entry, "rid-local")
    expect(line).toEqual({
      level: "info",
      ts: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      subsystem: "access",
      msg: "request",
      "node-id": entry.nodeId,
      "request-id": "rid-local",
      "endpoint-id": "local",
      method: "POST",
      path: "/hello",
      status: 200,
      "bytes-in": 12,
      "bytes-out": answer.body.length,
      "duration-ms": expect.any(Number),
      "upstream-ms": expect.any(Number),
      route: "local",
      upstream: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
      "client-addr": "127.0.0.1",
    })
    expect(line["upstream-ms"] as number).toBeLessThanOrEqual(line["duration-ms"] as number)
    noSecretLogged()
  })

  it("generates a request id when the client sends none, and gives it to the service", async () => {
    const answer = await request(`${entry.proxyUrl}/`, {
      headers: { "x-pico-endpoint": "local", authorization: `Bearer ${token}` },
    })
    const id = /^seen (\S+) $/.exec(answer.body)?.[1] ?? ""
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect((await lineFor(files.entry, id)).status).toBe(200)
  })

  it("writes a forwarded request on both nodes under one request id, each line saying where it went", async () => {
    const answer = await send("e", "/across", "rid-forwarded")
    expect(answer.body).toBe("seen rid-forwarded ")
    const [atEntry, atHolder] = [
      await lineFor(files.entry, "rid-forwarded"),
      await lineFor(files.holder, "rid-forwarded"),
    ]
    expect(atEntry).toMatchObject({
      route: "forwarded",
      "to-node": holder.nodeId,
      status: 200,
      "node-id": entry.nodeId,
    })
    expect(atEntry).not.toHaveProperty("from-node")
    expect(atHolder).toMatchObject({
      route: "local",
      "from-node": entry.nodeId,
      status: 200,
      "node-id": holder.nodeId,
    })
    noSecretLogged()
  })

  it("writes a WebSocket once it closes, with the bytes it carried", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${entry.proxyPort}/socket?${secrets.query}`, {
      headers: { "x-pico-endpoint": "local", authorization: `Bearer ${token}`, "x-request-id": "rid-ws" },
    })
    await new Promise((resolve, reject) => {
      ws.once("open", resolve)
      ws.once("error", reject)
    })
    ws.send("ping through the log")
    await new Promise((resolve) => ws.once("message", resolve))
    ws.close()
    const line = await lineFor(files.entry, "rid-ws")
    expect(line).toMatchObject({
      msg: "upgrade",
      status: 101,
      path: "/socket",
      route: "local",
      "endpoint-id": "local",
    })
    // Each direction carried the 20-byte message in a frame (and the close frames).
    expect(line["bytes-in"] as number).toBeGreaterThan(20)
    expect(line["bytes-out"] as number).toBeGreaterThan(20)
    noSecretLogged()
  })

  // Pico's own answers carry their reason; the 502 is the agent's, which could not reach its service.
  it.each([
    [400, undefined, "missing pico endpoint id"],
    [503, "nowhere", "endpoint not found"],
    [502, "refused", undefined],
    [504, "local", "endpoint timeout"],
  ])("writes a %i, with Pico's reason when Pico answered", async (status, endpoint, reason) => {
    const requestId = `rid-${status}`
    const path = status === 504 ? "/slow" : "/fails"
    const answer = await send(endpoint, path, requestId)
    expect(answer.status).toBe(status)
    const line = await lineFor(files.entry, requestId)
    // What the client got, whoever wrote it.
    expect(line).toMatchObject({
      status,
      path,
      "endpoint-id": endpoint ?? "",
      "bytes-out": answer.body.length,
    })
    expect(answer.body.length).toBeGreaterThan(0)
    expect(line.error).toBe(reason)
    noSecretLogged()
  })

  it.each([
    ["through this node's tunnel", "local"],
    ["across the hop to the node holding it", "e"],
  ])(
    "writes a response cut after its head %s with its status and error response cut",
    async (_where, endpoint) => {
      const requestId = `rid-cut-${endpoint}`
      await expect(send(endpoint, "/cut", requestId)).rejects.toThrow()
      expect(await lineFor(files.entry, requestId)).toMatchObject({ status: 200, error: "response cut" })
    },
  )

  it("writes a request whose body Node's parser refused with the 400 the client got, not a 499", async () => {
    const requestId = "rid-refused-body"
    const answer = await rawExchange(
      entry.proxyPort,
      `POST /refused-body HTTP/1.1\r\nHost: x\r\nx-pico-endpoint: local\r\nAuthorization: Bearer ${token}\r\n` +
        `x-request-id: ${requestId}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n`,
    )
    expect(answer.slice(0, 12)).toBe("HTTP/1.1 400")
    expect(await lineFor(files.entry, requestId)).toMatchObject({ status: 400, error: "malformed request" })
  })
})
