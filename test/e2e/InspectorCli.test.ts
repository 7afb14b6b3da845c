import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import YAML from "yaml"
import { request, startHttpServer, waitFor } from "../support/http.js"
import { startAgent, startNode, type TestNode } from "../support/node.js"
import { picoPerTest, runPico } from "../support/process.js"

const cleanups: Array<() => Promise<void>> = []
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})
const { pico } = picoPerTest(afterEach)

let node: TestNode
const received: Array<{ url: string; headers: Record<string, unknown>; body: string }> = []
const dir = mkdtempSync(join(tmpdir(), "pico-replay-"))
cleanups.push(async () => rmSync(dir, { recursive: true, force: true }))

const cli = (...args: Array<string>) => runPico([...args, "--server.url", node.adminUrl])

beforeAll(async () => {
  node = await startNode()
  cleanups.push(node.close)
  const service = await startHttpServer((req, res) => {
    let body = ""
    req.on("data", (chunk: Buffer) => {
      body += chunk.toString()
    })
    req.on("end", () => {
      received.push({ url: req.url ?? "", headers: req.headers, body })
      res.writeHead(200, { "content-type": "application/json" })
      res.end(JSON.stringify({ got: body }))
    })
  })
  cleanups.push(service.close)
  const agent = startAgent(node.upstreamUrl, { shop: service.port })
  cleanups.push(agent.stop)
  await waitFor("agent registered", async () => (await node.upstreamCount("shop")) === 1)
})

const order = (requestId: string, body: string) =>
  request(`${node.proxyUrl}/orders?page=2`, {
    method: "POST",
    headers: { "x-pico-endpoint": "shop", "x-request-id": requestId, cookie: "sid=secret" },
    body,
  })

describe("the capture commands", () => {
  it("start capturing, list and show what was captured, follow new exchanges, replay one with edits, stop", async () => {
    const started = await cli("capture", "start", "shop")
    expect(started).toEqual({
      code: 0,
      stdout: `endpoint: shop\ncapturing:\n- ${node.nodeId}\nidle: []\n`,
      stderr: "",
    })

    const follower = pico([
      "status",
      "proxy",
      "requests",
      "shop",
      "--follow",
      "--output",
      "json",
      "--server.url",
      node.adminUrl,
    ])
    await waitFor("following", async () => {
      await order(`followed-${Date.now()}`, "{}")
      // One JSON line per exchange, which the process helper parses as it would a log line.
      return follower.logs.some((line) => String(line.id).startsWith("followed-"))
    })
    const followed = follower.logs[0]
    expect(followed).toMatchObject({ endpoint: "shop", method: "POST", path: "/orders?page=2", status: 200 })

    await order("order-1", '{"item": 42}')
    const listed = await cli("status", "proxy", "requests", "shop")
    expect(listed.code).toBe(0)
    const list = YAML.parse(listed.stdout) as { requests: Array<{ id: string }> }
    expect(list.requests[0]).toMatchObject({ id: "order-1", node: node.nodeId, status: 200 })

    const shown = await cli("status", "proxy", "request", "order-1")
    const exchange = YAML.parse(shown.stdout)
    expect(exchange.request.headers).toContainEqual(["cookie", "(redacted)"])
    expect(exchange.request.body).toEqual({ size: 12, truncated: false, text: '{"item": 42}' })
    expect(exchange.response.body.text).toBe('{"got":"{\\"item\\": 42}"}')

    received.length = 0
    writeFileSync(join(dir, "body.json"), '{"item": 43}')
    const replayed = await cli(
      "replay",
      "order-1",
      "--header",
      "X-Trace: a, b",
      "--header",
      "Cookie: sid=given-again",
      "--body-file",
      join(dir, "body.json"),
      "--output",
      "json",
    )
    expect(replayed.stderr).toBe("")
    const result = JSON.parse(replayed.stdout)
    expect(result).toMatchObject({
      replay_of: "order-1",
      status: 200,
      body: { text: '{"got":"{\\"item\\": 43}"}' },
    })
    expect(received).toEqual([
      {
        url: "/orders?page=2",
        headers: expect.objectContaining({
          "x-trace": "a, b",
          cookie: "sid=given-again",
          "x-request-id": result.request_id,
        }),
        body: '{"item": 43}',
      },
    ])

    const stopped = await cli("capture", "stop", "shop")
    expect(stopped.stdout).toBe(`endpoint: shop\ncapturing: []\nidle:\n- ${node.nodeId}\n`)
  })

  it("--follow exits 1 saying so when the node ends the stream", async () => {
    const leaving = await startNode({ "capture.endpoints": ["nowhere"] })
    const follower = pico([
      "status",
      "proxy",
      "requests",
      "nowhere",
      "--follow",
      "--server.url",
      leaving.adminUrl,
    ])
    // Followed once an exchange (a 503: nothing serves the endpoint) comes out.
    await waitFor("following", async () => {
      await request(`${leaving.proxyUrl}/`, { headers: { "x-pico-endpoint": "nowhere" } })
      return follower.text().includes("status: 503")
    })
    await leaving.close()
    expect(await follower.exited).toBe(1)
    console.log(JSON.stringify(follower.text()))
    expect(follower.text()).toMatch(
      /\nfailed to follow requests of nowhere: the (node ended the stream|stream broke off) \(.*shutting down\?\).*\n$/,
    )
  })

  it("says what went wrong in one line", async () => {
    expect(await cli("replay", "nothing-like-it")).toEqual({
      code: 1,
      stdout: "",
      stderr: "failed to replay nothing-like-it: 404 request not found: not captured, or no longer kept\n",
    })
    expect(await cli("replay", "x", "--header", "no colon")).toMatchObject({
      code: 1,
      stderr: 'failed to replay x: --header "no colon": expected "Name: value" or "Name:"\n',
    })
    expect((await cli("status", "proxy", "requests", "not valid")).stderr).toBe(
      "failed to get requests of not valid: 400 invalid endpoint id\n",
    )
  })
})
