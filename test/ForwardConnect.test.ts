import type * as net from "node:net"
import { Effect, Fiber } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { EndpointId } from "../src/Domain/EndpointId.js"
import * as Forward from "../src/Forward.js"
import { closedPort, closeScriptedServers, closeWatch, scriptedServer } from "./support/http.js"
import { connectFailure, connectTcp } from "./support/tcp.js"

// Forward.connect against scripted proxy ports: each answers the upgrade request with raw bytes of the test's
// choosing, so every way an answer can go wrong is reached without a node.

afterEach(closeScriptedServers)

/** A scripted port (see scriptedServer) as a proxy URL. */
const scriptedPort = async (answer: (socket: net.Socket) => void): Promise<string> =>
  `http://127.0.0.1:${await scriptedServer(answer)}`

const authority = (url: string) => new URL(url).host

describe("Forward.connect", () => {
  it("hands over the socket after a pico-tcp 101, with the bytes sent right behind the answer first", async () => {
    const url = await scriptedPort((socket) =>
      socket.end("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: pico-tcp\r\n\r\nfirst"),
    )
    const socket = await connectTcp(url, "db")
    const chunks: Array<Buffer> = []
    for await (const chunk of socket) chunks.push(chunk as Buffer)
    expect(Buffer.concat(chunks).toString()).toBe("first")
  })

  it("fails as unreachable on a closed port, and on a 101 to another protocol, which it hangs up", async () => {
    const closed = `http://127.0.0.1:${await closedPort()}`
    expect(await connectFailure(closed, "db")).toMatchObject({
      reason: "unreachable",
      message: `cannot reach ${authority(closed)}: connect ECONNREFUSED ${authority(closed)}`,
    })
    const { watch, closed: closedByClient } = closeWatch()
    const other = await scriptedPort((socket) => {
      watch(socket)
      socket.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    })
    expect(await connectFailure(other, "db")).toMatchObject({
      reason: "unreachable",
      message: `cannot reach ${authority(other)}: the answer does not upgrade to pico-tcp`,
    })
    await closedByClient
    const half = await scriptedPort((socket) =>
      socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: pico-tcp\r\n\r\n"),
    )
    expect(await connectFailure(half, "db")).toMatchObject({
      reason: "unreachable",
      message: `cannot reach ${authority(half)}: the answer switches protocols without Connection: Upgrade`,
    })
  })

  it("hangs up when interrupted while waiting for the answer", async () => {
    const { watch, closed } = closeWatch()
    let asked = () => {}
    const requestReceived = new Promise<void>((resolve) => {
      asked = resolve
    })
    const silent = await scriptedPort((socket) => {
      watch(socket)
      asked()
    })
    const fiber = Effect.runFork(Forward.connect({ serverUrl: silent, endpointId: EndpointId("db") }))
    await requestReceived
    await Effect.runPromise(Fiber.interrupt(fiber))
    await closed
  })

  it("fails as refused with the status and the JSON error, or the status line for another body", async () => {
    const json = await scriptedPort((socket) =>
      socket.end(
        'HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 32\r\n\r\n{"error": "endpoint not found"}\r\n',
      ),
    )
    expect(await connectFailure(json, "db")).toMatchObject({
      reason: "refused",
      status: 503,
      message: `${authority(json)} answered 503: endpoint not found`,
    })
    const html = await scriptedPort((socket) =>
      socket.end("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 13\r\n\r\n<html></html>"),
    )
    expect(await connectFailure(html, "db")).toMatchObject({
      reason: "refused",
      status: 502,
      message: `${authority(html)} answered 502: HTTP 502 Bad Gateway`,
    })
    // A body that does not end is not waited for past its first 4 KiB (the test's own timeout is 5 s).
    const endless = await scriptedPort((socket) =>
      socket.write(
        `HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n2000\r\n${"x".repeat(8192)}\r\n`,
      ),
    )
    expect(await connectFailure(endless, "db", { timeout: "1 minute" })).toMatchObject({
      reason: "refused",
      status: 403,
      message: `${authority(endless)} answered 403: HTTP 403 Forbidden`,
    })
  })

  it("gives up after its timeout: as a timeout when nothing came, as refused when a refusal's body is slow", async () => {
    const { watch, closed: closedByClient } = closeWatch()
    const silent = await scriptedPort(watch)
    expect(await connectFailure(silent, "db", { timeout: "200 millis" })).toMatchObject({
      reason: "timeout",
      message: `no answer from ${authority(silent)} within 200ms`,
    })
    await closedByClient
    // The status line came; the body it announces never does.
    const slowClosed = closeWatch()
    const slow = await scriptedPort((socket) => {
      slowClosed.watch(socket)
      socket.write('HTTP/1.1 401 Unauthorized\r\nContent-Length: 100\r\n\r\n{"error": ')
    })
    expect(await connectFailure(slow, "db", { timeout: "200 millis" })).toMatchObject({
      reason: "refused",
      status: 401,
      message: `${authority(slow)} answered 401: HTTP 401 Unauthorized`,
    })
    await slowClosed.closed
  })
})
