import type * as net from "node:net"
import { afterEach, describe, expect, it } from "vitest"
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
    const slow = await scriptedPort((socket) =>
      socket.write('HTTP/1.1 401 Unauthorized\r\nContent-Length: 100\r\n\r\n{"error": '),
    )
    expect(await connectFailure(slow, "db", { timeout: "200 millis" })).toMatchObject({
      reason: "refused",
      status: 401,
      message: `${authority(slow)} answered 401: HTTP 401 Unauthorized`,
    })
  })
})
