import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeForwarder } from "../src/Agent/Forwarder.js"
import { forwardMetrics } from "../src/Metrics/Agent.js"
import { memoryLink, type TunnelStream } from "../src/Tunnel.js"
import { closedPort } from "./support/http.js"
import { startEchoService } from "./support/tcp.js"

/** Everything the agent sends back on a stream until its FIN. */
const answer = (stream: TunnelStream): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    stream.on("data", (chunk: Buffer) => chunks.push(chunk))
    stream.once("end", () => resolve(Buffer.concat(chunks).toString()))
    stream.once("error", reject)
  })

/** An agent's forwarder for a TCP endpoint on `port`, serving the streams a server end opens. */
const tcpEndpoint = (port: number) =>
  Effect.gen(function* () {
    const link = yield* memoryLink({ interval: "10 seconds", timeout: "10 seconds" })
    const forward = makeForwarder(
      { kind: "tcp", host: "127.0.0.1", port },
      1000,
      () => {},
      forwardMetrics("db"),
    )
    yield* link.client.serveStreams(forward)
    return { open: link.server.openStream }
  })

describe("the agent's forwarder on a TCP endpoint", () => {
  it.live("answers the TCP upgrade with 101 once the service accepts, then carries the bytes", () =>
    Effect.gen(function* () {
      const echo = yield* Effect.promise(startEchoService)
      yield* Effect.addFinalizer(() => Effect.promise(echo.close))
      const { open } = yield* tcpEndpoint(echo.port)
      const stream = yield* open
      stream.end(
        "GET /pico/v1/tcp/db HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: pico-tcp\r\n\r\nearly",
      )
      expect(yield* Effect.promise(() => answer(stream))).toBe(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: pico-tcp\r\n\r\nearly",
      )
    }).pipe(Effect.scoped),
  )

  it.live("tells anything but a TCP upgrade that the endpoint is TCP (426), and a refused service 502", () =>
    Effect.gen(function* () {
      const { open } = yield* tcpEndpoint(yield* Effect.promise(closedPort))
      const asked = (head: string) =>
        Effect.flatMap(open, (stream) => {
          stream.end(head)
          return Effect.promise(() => answer(stream))
        })
      for (const head of [
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
      ]) {
        const text = yield* asked(head)
        expect(text).toMatch(/^HTTP\/1\.1 426 Upgrade Required\r\n/)
        expect(text).toMatch(/\r\nupgrade: pico-tcp\r\n/i)
        expect(text.endsWith('\r\n\r\n{"error":"endpoint is tcp"}')).toBe(true)
      }
      const refused = yield* asked(
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: pico-tcp\r\n\r\n",
      )
      expect(refused).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*\{"error":"upstream unreachable"\}$/)
    }).pipe(Effect.scoped),
  )
})
