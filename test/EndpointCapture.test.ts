import type * as http from "node:http"
import { describe, expect, it } from "vitest"
import { defaultRedactedHeaders } from "../src/Domain/Capture.js"
import { EndpointCapture } from "../src/Inspector/EndpointCapture.js"
import { HEAD_CHARS, type Recording } from "../src/Inspector/Recording.js"
import { exchangeOf } from "./support/exchange.js"
import { collectGarbage } from "./support/gc.js"

const MiB = 1024 * 1024
const limits = { bodyBytes: 32 * 1024, redact: new Set(defaultRedactedHeaders) }
const rawHeaders = [
  "Host",
  "e.pico.test",
  "Authorization",
  "Bearer secret-token",
  "Cookie",
  "id=secret-cookie",
  "X-Api-Key",
  "secret-api-key",
]

/** What the proxy hands a capture: an exchange for a request as Node parsed it. */
const exchangeFor = (requestId: string, headers: ReadonlyArray<string> = rawHeaders) => {
  const exchange = exchangeOf({
    method: "POST",
    url: `/upload/${requestId}?q=1`,
    httpVersion: "1.1",
    rawHeaders: headers,
    headers: {},
  })
  exchange.requestId = requestId
  return exchange
}

const upstreamResponse = {
  statusCode: 200,
  statusMessage: "OK",
  rawHeaders: ["Set-Cookie", "id=new-secret"],
} as unknown as http.IncomingMessage

/** Sends a 1 MiB body each way through the recording, as the proxy does: in 64 KiB chunks of Node's buffers. */
const exchangeMiB = (capture: EndpointCapture, requestId: string, body: Buffer): Recording | undefined => {
  const exchange = exchangeFor(requestId)
  const recording = capture.begin(exchange)
  for (let offset = 0; offset < body.length; offset += 64 * 1024)
    recording?.addRequestBody(body.subarray(offset, offset + 64 * 1024))
  recording?.response(upstreamResponse)
  for (let offset = 0; offset < body.length; offset += 64 * 1024)
    recording?.addResponseBody(body.subarray(offset, offset + 64 * 1024))
  recording?.finish(exchange, 200)
  return recording
}

/**
 * Heap and buffer memory in use, after full collections: buffers' memory outside the heap is given back a
 * collection or two after the objects holding it are gone.
 */
const memoryInUse = () => {
  for (let i = 0; i < 4; i++) collectGarbage()
  const usage = process.memoryUsage()
  return usage.heapUsed + usage.external
}

describe("an endpoint's capture", () => {
  it("keeps the last exchanges within its stated bound through 10,000 requests with 1 MiB bodies", () => {
    const size = 100
    // The bound docs/operations.md states: per exchange, both bodies' kept bytes, both heads, and 8 KiB of
    // bookkeeping (the objects around them).
    const bound = size * (2 * limits.bodyBytes + 2 * HEAD_CHARS + 8 * 1024)
    const body = Buffer.alloc(MiB, 0xab)
    const capture = new EndpointCapture("e", "node-1", size, limits, () => {})
    const before = memoryInUse()
    let peak = 0
    for (let i = 0; i < 10_000; i++) {
      exchangeMiB(capture, `r${i}`, body)
      if (i % 1000 === 999) peak = Math.max(peak, memoryInUse() - before)
    }
    const held = capture.newestFirst()
    expect(held).toHaveLength(size)
    expect(held[0]?.id).toBe("r9999")
    expect(held[size - 1]?.id).toBe(`r${10_000 - size}`)
    expect(capture.retained()).toBeLessThanOrEqual(size * (2 * limits.bodyBytes + 2 * HEAD_CHARS))
    console.log(
      `capture memory: ${(peak / MiB).toFixed(2)} MiB held at most, bound ${(bound / MiB).toFixed(2)} MiB`,
    )
    expect(peak).toBeLessThanOrEqual(bound)
    // The bodies are the first 32 KiB, copied: 1 MiB was seen each way.
    const detail = held[0]?.detail()
    expect(detail?.request.body).toMatchObject({ size: MiB, truncated: true })
    expect(Buffer.from(detail?.request.body.base64 ?? "", "base64")).toEqual(
      body.subarray(0, limits.bodyBytes),
    )
    expect(detail?.response?.body.size).toBe(MiB)
  })

  it("redacts credential headers of both heads, by the library's default list", () => {
    const capture = new EndpointCapture("e", "node-1", 10, limits, () => {})
    const detail = exchangeMiB(capture, "r", Buffer.from("x"))?.detail()
    expect(detail?.request.headers).toEqual([
      ["Host", "e.pico.test"],
      ["Authorization", "(redacted)"],
      ["Cookie", "(redacted)"],
      ["X-Api-Key", "(redacted)"],
    ])
    expect(JSON.stringify(detail)).not.toMatch(/secret/)
  })

  it("records no more exchanges than it keeps when they are all still in flight", () => {
    const capture = new EndpointCapture("e", "node-1", 3, limits, () => {})
    const inFlight = [1, 2, 3].map((i) => capture.begin(exchangeFor(`r${i}`)))
    expect(inFlight.every((recording) => recording !== undefined)).toBe(true)
    expect(capture.begin(exchangeFor("r4"))).toBeUndefined()
    expect(capture.skipped).toBe(1)
    // Once one is done, a new exchange takes its place.
    inFlight[1]?.finish(exchangeFor("r2"), 200)
    expect(capture.begin(exchangeFor("r5"))?.id).toBe("r5")
    expect(capture.newestFirst().map((recording) => recording.id)).toEqual(["r5", "r3", "r1"])
  })

  it("keeps a head's first 16 KiB of headers and says it left the rest out", () => {
    const many = Array.from({ length: 400 }, (_, i) => [`x-header-${i}`, "v".repeat(100)]).flat()
    const exchange = exchangeFor("r", many)
    const recording = new EndpointCapture("e", "n", 1, limits, () => {}).begin(exchange)
    const headers = recording?.detail().request
    expect(headers?.headers_truncated).toBe(true)
    expect(recording?.request.chars).toBeLessThanOrEqual(HEAD_CHARS + 200)
  })
})
