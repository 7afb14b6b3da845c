import * as http from "node:http"
import type { Duplex } from "node:stream"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit } from "effect"
import * as Tunnel from "../src/Tunnel.js"

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
