import * as http from "node:http"
import type { Duplex } from "node:stream"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit } from "effect"
import { acceptValue } from "../src/Tunnel/internal/WebSocketHandshake.js"
import * as Tunnel from "../src/Tunnel.js"
import { clientFrame } from "./support/webSocketFrames.js"

const heartbeat = { interval: "10 seconds", timeout: "10 seconds" } as const

/**
 * A node's side of tunnels over real WebSockets (Tunnel.make's serve): each session opens a stream and sends a
 * greeting on it the moment its handshake is done, as a node does for a request already waiting for the
 * endpoint.
 */
const greetingServer = Effect.acquireRelease(
  Effect.async<{ server: http.Server; port: number }>((resume) => {
    const tunnel = Tunnel.make(heartbeat)
    const server = http.createServer()
    server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      void Effect.runPromise(
        Effect.gen(function* () {
          const session = yield* tunnel.serve(req, socket, head)
          const stream = yield* session.openStream
          stream.on("error", () => {})
          stream.end("hello from the node")
          yield* session.closed
        }).pipe(Effect.scoped, Effect.ignore),
      )
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      resume(
        Effect.succeed({ server, port: typeof address === "object" && address !== null ? address.port : 0 }),
      )
    })
  }),
  ({ server }) =>
    Effect.sync(() => {
      server.closeAllConnections()
      server.close()
    }),
)

describe("Tunnel.connect over a WebSocket", () => {
  it.scoped("holds a stream the node opens right behind its handshake until the agent serves streams", () =>
    Effect.gen(function* () {
      const { port } = yield* greetingServer
      const session = yield* Tunnel.make(heartbeat).connect(`ws://127.0.0.1:${port}/`, {})
      // A ping's answer comes after the node's stream (one ordered connection): it has arrived, unserved.
      yield* session.ping
      const greeting = yield* Deferred.make<string>()
      yield* session.serveStreams((stream) => {
        const chunks: Array<Buffer> = []
        stream.end()
        stream.on("data", (chunk: Buffer) => chunks.push(chunk))
        stream.on("end", () => Deferred.unsafeDone(greeting, Exit.succeed(Buffer.concat(chunks).toString())))
      })
      expect(yield* Deferred.await(greeting)).toBe("hello from the node")
    }),
  )
})

/** A node that answers every upgrade with `answer(key)`, written raw to the socket, then `after` if given. */
const answeringServer = (answer: (key: string) => string, after?: Buffer) =>
  Effect.acquireRelease(
    Effect.async<{ server: http.Server; url: string }>((resume) => {
      const server = http.createServer()
      server.on("upgrade", (req: http.IncomingMessage, socket: Duplex) => {
        socket.on("error", () => {})
        socket.write(answer(String(req.headers["sec-websocket-key"])))
        if (after !== undefined) socket.write(after)
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        resume(Effect.succeed({ server, url: `ws://127.0.0.1:${port}/` }))
      })
    }),
    ({ server }) =>
      Effect.sync(() => {
        server.closeAllConnections()
        server.close()
      }),
  )

const switching = (accept: string, extra = "") =>
  `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n${extra}\r\n`

describe("Tunnel.connect's WebSocket handshake (Pico's own client)", () => {
  const connectTo = (url: string) => Effect.flip(Tunnel.make(heartbeat).connect(url, {}))

  it.scoped("takes no 101 whose Sec-WebSocket-Accept does not answer its key", () =>
    Effect.gen(function* () {
      const { url } = yield* answeringServer(() => switching("dGhlIHNhbXBsZSBub25jZQ=="))
      const error = yield* connectTo(url)
      expect(error).toMatchObject({
        reason: "unreachable",
        message: "wrong Sec-WebSocket-Accept in the answer",
      })
    }),
  )

  it.scoped("takes no 101 that names an extension or a subprotocol it did not offer", () =>
    Effect.gen(function* () {
      const extension = yield* answeringServer((key) =>
        switching(acceptValue(key), "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
      )
      expect(yield* connectTo(extension.url)).toMatchObject({
        reason: "unreachable",
        message: "the answer names an extension we did not offer",
      })
      const subprotocol = yield* answeringServer((key) =>
        switching(acceptValue(key), "Sec-WebSocket-Protocol: chat\r\n"),
      )
      expect(yield* connectTo(subprotocol.url)).toMatchObject({
        reason: "unreachable",
        message: "the answer names a subprotocol we did not offer",
      })
    }),
  )

  it.scoped("reports another status as refused, with the node's JSON error and its headers", () =>
    Effect.gen(function* () {
      const body = JSON.stringify({ error: "invalid token" })
      const { url } = yield* answeringServer(
        () =>
          `HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nX-Served-By: node-1\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      )
      const error = yield* connectTo(url)
      expect(error).toMatchObject({ reason: "refused", status: 401, message: "invalid token" })
      expect(error.headers?.["x-served-by"]).toBe("node-1")
    }),
  )

  it.scoped("closes the session as a protocol error when the node sends a masked frame", () =>
    Effect.gen(function* () {
      const masked = clientFrame({ opcode: 0x2, payload: Buffer.from("x") })
      const { url } = yield* answeringServer((key) => switching(acceptValue(key)), masked)
      const session = yield* Tunnel.make(heartbeat).connect(url, {})
      expect(yield* session.closed).toEqual({
        _tag: "ProtocolError",
        message: "masked websocket frame from the server",
      })
    }),
  )
})
