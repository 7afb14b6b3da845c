import { once } from "node:events"
import type { Duplex } from "node:stream"
import { afterEach, describe, expect, it } from "vitest"
import { connectThroughProxy } from "../src/Tunnel/internal/ForwardProxy.js"
import { closedPort, closeScriptedServers, closeWatch, scriptedServer } from "./support/http.js"

afterEach(closeScriptedServers)

/** Opens a plain (ws://) tunnel to pico.example.com:8001 through the proxy: the socket, or the error's message. */
const tunnel = (proxyUrl: string, timeoutMs = 10_000) =>
  new Promise<Duplex | string>((resolve) => {
    connectThroughProxy(new URL(proxyUrl), false, timeoutMs).createConnection(
      { host: "pico.example.com", port: 8001 },
      (error, socket) => resolve(error === null ? socket : error.message),
    )
  })

describe("a connection through a forward proxy's CONNECT", () => {
  it("asks for the target with the URL's credentials, and hands over bytes sent right behind the answer", async () => {
    let request = ""
    const port = await scriptedServer((socket, head) => {
      request = head
      // The answer and the target's first bytes arrive in one packet: none may be lost.
      socket.write("HTTP/1.1 200 Connection established\r\nProxy-Agent: test\r\n\r\nhello from the target")
      socket.on("data", (chunk: Buffer) => socket.write(`echo ${chunk}`))
    })
    const socket = await tunnel(`http://me:p%40ss@127.0.0.1:${port}`)
    if (typeof socket === "string") throw new Error(socket)
    expect(request).toBe(
      "CONNECT pico.example.com:8001 HTTP/1.1\r\nHost: pico.example.com:8001\r\n" +
        `Proxy-Authorization: Basic ${Buffer.from("me:p@ss").toString("base64")}\r\n\r\n`,
    )
    let received = ""
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString()
    })
    socket.write("ping")
    await expect.poll(() => received).toBe("hello from the targetecho ping")
    socket.destroy()
  })

  it("takes an answer whose head arrives in pieces", async () => {
    // Two reads need a pause between the writes, and nothing the client does can be waited on: a timer.
    const port = await scriptedServer((socket) => {
      socket.write("HTTP/1.1 200 Connection established\r\n")
      setTimeout(() => socket.write("\r\nfrom the target"), 50)
    })
    const socket = await tunnel(`http://127.0.0.1:${port}`)
    if (typeof socket === "string") throw new Error(socket)
    const [first] = (await once(socket, "data")) as [Buffer]
    expect(first.toString()).toBe("from the target")
    socket.destroy()
  })

  it("fails with the proxy's status line when it refuses", async () => {
    const port = await scriptedServer((socket) =>
      socket.end("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"),
    )
    expect(await tunnel(`http://127.0.0.1:${port}`)).toBe(
      `proxy http://127.0.0.1:${port}: refused CONNECT pico.example.com:8001: 407 Proxy Authentication Required`,
    )
  })

  it("fails on an answer that is not HTTP, and on a proxy that hangs up first", async () => {
    for (const answer of [
      "SSH-2.0-OpenSSH_9.2\r\n\r\n",
      // A status line must start the answer, and its status has three digits.
      "junk HTTP/1.1 200 OK\r\n\r\n",
      "HTTP/1.1 2 OK\r\n\r\n",
      // A head that never ends: given up after 16 KiB.
      `HTTP/1.1 200 OK\r\nX-Padding: ${"x".repeat(17 * 1024)}`,
    ]) {
      const { watch, closed } = closeWatch()
      const garbage = await scriptedServer((socket) => {
        watch(socket)
        socket.write(answer)
      })
      expect(await tunnel(`http://127.0.0.1:${garbage}`)).toBe(
        `proxy http://127.0.0.1:${garbage}: not an HTTP answer to CONNECT`,
      )
      // The connection to such a proxy is not kept.
      await closed
    }
    const hangUp = await scriptedServer((socket) => socket.end())
    expect(await tunnel(`http://127.0.0.1:${hangUp}`)).toBe(
      `proxy http://127.0.0.1:${hangUp}: closed the connection before answering CONNECT pico.example.com:8001`,
    )
  })

  it("fails when the proxy is unreachable, or does not answer in time", async () => {
    const closed = await closedPort()
    expect(await tunnel(`http://127.0.0.1:${closed}`)).toBe(
      `proxy http://127.0.0.1:${closed}: connect ECONNREFUSED 127.0.0.1:${closed}`,
    )
    const silent = await scriptedServer(() => {})
    expect(await tunnel(`http://127.0.0.1:${silent}`, 200)).toBe(
      `proxy http://127.0.0.1:${silent}: no answer to CONNECT pico.example.com:8001 within 200ms`,
    )
  })
})
