import { randomBytes } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as http from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { CaptureState, ExchangeDetail, ExchangeList, ReplayResult } from "../../src/Domain/Capture.js"
import { request, startHttpServer, waitFor } from "../support/http.js"
import { startAgent, startJoinedPair, type TestNode } from "../support/node.js"
import { newClusterKey } from "../support/tokens.js"

interface Seen {
  readonly url: string
  readonly headers: http.IncomingHttpHeaders
  readonly body: Buffer
}

const cleanups: Array<() => Promise<void>> = []
const seen: Array<Seen> = []
let first: TestNode
let second: TestNode
const bodyKib = 4
const dir = mkdtempSync(join(tmpdir(), "pico-capture-"))
const accessLogFile = join(dir, "access.log")

const adminJson = async <A>(node: TestNode, path: string, method = "GET", body?: string) => {
  const answer = await request(`${node.adminUrl}${path}`, { method, ...(body === undefined ? {} : { body }) })
  return { status: answer.status, body: JSON.parse(answer.body) as A }
}

const capturePath = "/status/proxy/endpoints/e/capture"
const listPath = "/status/proxy/endpoints/e/requests"

/** Sends a request to a node's proxy port, with the body in the chunks given (chunked when there are several). */
const send = (
  node: TestNode,
  path: string,
  chunks: ReadonlyArray<Buffer>,
  headers: Record<string, string> = {},
) =>
  new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
    const req = http.request(`${node.proxyUrl}${path}`, {
      method: "POST",
      headers: {
        "x-pico-endpoint": "e",
        ...(chunks.length === 1 ? { "content-length": String(chunks[0]?.length) } : {}),
        ...headers,
      },
    })
    req.on("response", (res) => {
      const parts: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => parts.push(chunk))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }))
    })
    req.on("error", reject)
    for (const chunk of chunks) req.write(chunk)
    req.end()
  })

/** The exchange with this request id in node's cluster-wide list, once it is there and finished. */
const listed = async (node: TestNode, requestId: string) => {
  let found: ExchangeList["exchanges"][number] | undefined
  await waitFor(`${requestId} listed`, async () => {
    found = (await adminJson<ExchangeList>(node, listPath)).body.exchanges.find(
      (exchange) => exchange.id === requestId && exchange.status !== null,
    )
    return found !== undefined
  })
  return found as ExchangeList["exchanges"][number]
}

beforeAll(async () => {
  // The service echoes a body back, in three chunks of no announced length (chunked), and records what it saw.
  const service = await startHttpServer((req, res) => {
    const parts: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => parts.push(chunk))
    req.on("end", () => {
      const body = Buffer.concat(parts)
      seen.push({ url: req.url ?? "", headers: req.headers, body })
      res.writeHead(200, { "content-type": "application/octet-stream" })
      const third = Math.ceil(body.length / 3)
      for (let i = 0; i < 3; i++) res.write(body.subarray(i * third, (i + 1) * third))
      res.end()
    })
  })
  cleanups.push(service.close)
  const cluster = {
    "gossip.interval": "50ms",
    "gossip.secret-key": [newClusterKey()],
    "capture.body-kib": bodyKib,
    // One more header to redact: the credentials stay redacted beside it.
    "capture.redact-headers": ["x-secret"],
    // Both nodes append to one file: the replay's line is checked there.
    "access-log.enabled": true,
    "access-log.file": accessLogFile,
  }
  ;[first, second] = await startJoinedPair(cluster)
  cleanups.push(first.close, second.close)
  const agent = startAgent(second.upstreamUrl, { e: service.port })
  cleanups.push(agent.stop)
  await waitFor(
    "nodes know each other",
    async () => (await first.knows(second.nodeId)) && first.routesRemotely("e"),
  )
})

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
  rmSync(dir, { recursive: true, force: true })
})

describe("capture", () => {
  it("is off until started, and started through one node's API it runs on every node", async () => {
    expect((await adminJson<CaptureState>(first, capturePath)).body).toEqual({
      endpoint: "e",
      capturing: [],
      idle: [first.nodeId, second.nodeId].sort(),
      missing: [],
    })
    await send(second, "/before", [Buffer.from("not captured")], { "x-request-id": "before-start" })
    const started = await adminJson<CaptureState>(first, capturePath, "PUT")
    expect(started.body.capturing).toEqual([first.nodeId, second.nodeId].sort())
    expect((await adminJson<ExchangeList>(first, listPath)).body.exchanges).toEqual([])
  })

  it("captures a binary body and a chunked one as they were, keeping the first KiB and the sizes", async () => {
    const binary = randomBytes(3000)
    binary[0] = 0
    const sent = await send(second, "/binary?x=1", [binary], { "x-request-id": "rid-binary" })
    expect(sent.body).toEqual(binary)
    await listed(first, "rid-binary")
    const detail = (await adminJson<ExchangeDetail>(first, "/status/proxy/requests/rid-binary")).body
    expect(detail).toMatchObject({
      node: second.nodeId,
      endpoint: "e",
      method: "POST",
      path: "/binary?x=1",
      status: 200,
    })
    expect(detail.upstream).toEqual({ route: "local", session: expect.stringMatching(/^127\.0\.0\.1:\d+$/) })
    expect(detail.request.body).toEqual({ size: 3000, base64: binary.toString("base64"), truncated: false })
    expect(detail.response?.body).toEqual({ size: 3000, base64: binary.toString("base64"), truncated: false })
    expect(detail.response?.headers).toContainEqual(["Transfer-Encoding", "chunked"])

    const pieces = [randomBytes(2500), randomBytes(2500), randomBytes(1000)]
    const whole = Buffer.concat(pieces)
    await send(second, "/chunked", pieces, { "x-request-id": "rid-chunked" })
    await listed(first, "rid-chunked")
    const chunked = (await adminJson<ExchangeDetail>(first, "/status/proxy/endpoints/e/requests/rid-chunked"))
      .body
    expect(chunked.request.headers).toContainEqual(["Transfer-Encoding", "chunked"])
    const kept = whole.subarray(0, bodyKib * 1024).toString("base64")
    expect(chunked.request.body).toEqual({ size: 6000, base64: kept, truncated: true })
    expect(chunked.response?.body).toEqual({ size: 6000, base64: kept, truncated: true })
  })

  it("lists on one node, and follows live, what another node captured", async () => {
    const events: Array<string> = []
    const follow = http.get(`${first.adminUrl}${listPath}?follow`)
    const opened = new Promise<http.IncomingMessage>((resolve) => follow.on("response", resolve))
    const stream = await opened
    stream.setEncoding("utf8")
    stream.on("data", (text: string) => events.push(text))
    // The first node follows the second's stream once it has looked for peers.
    await waitFor("following the peer", async () => {
      await send(second, "/live", [Buffer.from("x")], { "x-request-id": `live-${events.length}` })
      return events.join("").includes('"id":"live-')
    })
    follow.destroy()
    const event = JSON.parse(
      /data: (.*)/.exec(
        events
          .join("")
          .split("\n\n")
          .find((frame) => frame.includes("live-")) ?? "",
      )?.[1] ?? "{}",
    )
    expect(event).toMatchObject({
      node: second.nodeId,
      endpoint: "e",
      method: "POST",
      path: "/live",
      status: 200,
    })
  })

  it("replays through one node what another captured, with edits, and marks the replay", async () => {
    await send(second, "/replayed", [Buffer.from("original body")], {
      "x-request-id": "rid-original",
      authorization: "Bearer service-secret",
      "x-secret": "also secret",
      "x-forwarded-for": "6.6.6.6",
      "x-kept": "yes",
    })
    await listed(first, "rid-original")
    const captured = (await adminJson<ExchangeDetail>(first, "/status/proxy/requests/rid-original")).body
    expect(captured.request.headers).toContainEqual(["authorization", "(redacted)"])
    expect(captured.request.headers).toContainEqual(["x-secret", "(redacted)"])
    seen.length = 0
    const replayed = await adminJson<ReplayResult>(
      first,
      "/status/proxy/endpoints/e/requests/rid-original/replay",
      "POST",
      JSON.stringify({ headers: { "x-edited": "by the replay" } }),
    )
    expect(replayed.status).toBe(200)
    expect(replayed.body).toMatchObject({ replay_of: "rid-original", node: second.nodeId, status: 200 })
    expect(Buffer.from(replayed.body.body.base64, "base64").toString()).toBe("original body")
    // The service got it again: same method, target and body, edited, without the redacted credential.
    expect(seen).toHaveLength(1)
    expect(seen[0]).toMatchObject({ url: "/replayed", body: Buffer.from("original body") })
    expect(seen[0]?.headers).toMatchObject({ "x-kept": "yes", "x-edited": "by the replay" })
    expect(seen[0]?.headers.authorization).toBeUndefined()
    // The replay is the node's own request: it has no client address to add, so it sends no chain at all (the
    // captured one, the client's own, would pass for the hops that reached the node).
    expect(seen[0]?.headers["x-forwarded-for"]).toBeUndefined()
    expect(seen[0]?.headers["x-request-id"]).toBe(replayed.body.request_id)
    expect(seen[0]?.headers["x-pico-replay"]).toBeUndefined()
    const replay = await listed(first, replayed.body.request_id)
    expect(replay).toMatchObject({ replay_of: "rid-original", node: second.nodeId })
    const logged = () =>
      readFileSync(accessLogFile, "utf8")
        .split("\n")
        .filter((line) => line.includes(replayed.body.request_id))
    await waitFor("the replay's access log line", () => logged().length > 0)
    expect(logged().map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining({
        "node-id": second.nodeId,
        "replay-of": "rid-original",
        status: 200,
        route: "local",
      }),
    ])
  })

  it("captures, counts and logs a client that claims to be a peer or a replay as the client it is", async () => {
    const traffic = async () =>
      (
        await adminJson<{ nodes: Array<{ node: string; requests: number }> }>(second, "/status/proxy/traffic")
      ).body.nodes.find((entry) => entry.node === second.nodeId)?.requests ?? 0
    const before = await traffic()
    await send(second, "/claims", [Buffer.from("x")], {
      "x-request-id": "claims-to-be-a-peer",
      "x-pico-forward": "v1.0.forged",
      "x-pico-forwarded-by": "n9-forged",
      "x-pico-replay": "rid-forged",
    })
    const exchange = await listed(first, "claims-to-be-a-peer")
    expect(exchange.node).toBe(second.nodeId)
    expect(exchange).not.toHaveProperty("replay_of")
    await waitFor("counted", async () => (await traffic()) > before)
    const logged = () =>
      readFileSync(accessLogFile, "utf8")
        .split("\n")
        .filter((line) => line.includes('"claims-to-be-a-peer"'))
        .map((line) => JSON.parse(line))
    await waitFor("the access log line", () => logged().length > 0)
    expect(logged()).toHaveLength(1)
    expect(logged()[0]).not.toHaveProperty("from-node")
    expect(logged()[0]).not.toHaveProperty("replay-of")
  })

  it("refuses edits Node cannot put in a request head with 400, sending nothing", async () => {
    const sent = seen.length
    for (const headers of [{ "bad name": "x" }, { "x-split": "a\r\nInjected: yes" }]) {
      const refused = await adminJson<{ error: string }>(
        first,
        "/status/proxy/endpoints/e/requests/rid-original/replay",
        "POST",
        JSON.stringify({ headers }),
      )
      expect(refused.status).toBe(400)
      expect(refused.body.error).toMatch(/header/i)
    }
    expect(seen).toHaveLength(sent)
  })

  it("refuses to replay a body it did not keep whole, unless the replay brings one", async () => {
    const refused = await adminJson<{ error: string }>(
      first,
      "/status/proxy/endpoints/e/requests/rid-chunked/replay",
      "POST",
    )
    expect(refused).toEqual({
      status: 409,
      body: { error: "only the first 4096 bytes of the 6000-byte body were captured: give the body to send" },
    })
    const withBody = await adminJson<ReplayResult>(
      first,
      "/status/proxy/endpoints/e/requests/rid-chunked/replay",
      "POST",
      JSON.stringify({ body_base64: Buffer.from("a new body").toString("base64") }),
    )
    expect(withBody.body.status).toBe(200)
    expect(seen.at(-1)?.body.toString()).toBe("a new body")
  })

  it("says which request it does not hold", async () => {
    expect(await adminJson(first, "/status/proxy/requests/never-sent")).toEqual({
      status: 404,
      body: { error: "request not found: not captured, or no longer kept" },
    })
    expect((await adminJson(first, "/status/proxy/endpoints/not valid/requests")).status).toBe(400)
  })

  it("keeps only the newest events for a follower that stops reading, not everything since", async () => {
    // Started here too (starting is idempotent), so this test does not lean on the first one.
    expect((await adminJson<CaptureState>(first, capturePath, "PUT")).body.capturing).toHaveLength(2)
    const follow = http.get(`${first.adminUrl}${listPath}?follow`)
    const stream = await new Promise<http.IncomingMessage>((resolve) => follow.on("response", resolve))
    stream.pause()
    // 3,000 events of 12 KB: 36 MB, far more than the connection's buffers and the backlog hold.
    const total = 3_000
    const padding = "a".repeat(12_000)
    for (let batch = 0; batch < total; batch += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          send(first, `/flood/${padding}`, [Buffer.from("x")], { "x-request-id": `flood-${batch + i}` }),
        ),
      )
    }
    let text = ""
    stream.setEncoding("utf8")
    stream.on("data", (chunk: string) => {
      text += chunk
    })
    stream.resume()
    await waitFor("the newest event", () => text.includes(`"id":"flood-${total - 1}"`))
    follow.destroy()
    const received = text.split("\n\n").filter((frame) => frame.includes('"id":"flood-')).length
    expect(received).toBeGreaterThan(0)
    expect(received).toBeLessThan(total)
  })

  it("stops on every node, dropping what it held", async () => {
    const stopped = await adminJson<CaptureState>(second, capturePath, "DELETE")
    expect(stopped.body.capturing).toEqual([])
    await send(second, "/after", [Buffer.from("x")], { "x-request-id": "after-stop" })
    expect((await adminJson<ExchangeList>(first, listPath)).body.exchanges).toEqual([])
  })
})
