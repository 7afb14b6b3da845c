import { randomBytes } from "node:crypto"
import { readFileSync } from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import * as net from "node:net"
import type { Duplex } from "node:stream"
import type * as tls from "node:tls"
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber } from "effect"
import { LentReads } from "../src/Tunnel/internal/LentReads.js"
import {
  type HandshakeOutcome,
  openWebSocket,
  type WebSocketClientOptions,
} from "../src/Tunnel/internal/WebSocketClient.js"
import { acceptValue } from "../src/Tunnel/internal/WebSocketHandshake.js"
import { Opcode, WebSocketReader } from "../src/Tunnel/internal/WebSocketReader.js"
import * as Tunnel from "../src/Tunnel.js"
import { closeScriptedServers, closeWatch, scriptedServer, waitFor } from "./support/http.js"
import { makeCertificates } from "./support/tls.js"
import { clientFrame } from "./support/webSocketFrames.js"

const heartbeat = { interval: "10 seconds", timeout: "10 seconds" } as const

/**
 * A node's side of tunnels over real WebSockets (Tunnel.make's serve): each session opens a stream the moment its
 * handshake is done, as a node does for a request already waiting for the endpoint, and `send` writes on it (or
 * reads it). Its sessions share `growthPool` when one is given.
 */
const nodeServer = (send: (stream: Duplex) => void, growthPool?: Tunnel.GrowthPool) =>
  Effect.acquireRelease(
    Effect.async<{ server: http.Server; port: number }>((resume) => {
      const tunnel = Tunnel.make(heartbeat, growthPool)
      const server = http.createServer()
      server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
        void Effect.runPromise(
          Effect.gen(function* () {
            const session = yield* tunnel.serve(req, socket, head)
            const stream = yield* session.openStream
            stream.on("error", () => {})
            send(stream)
            yield* session.closed
          }).pipe(Effect.scoped, Effect.ignore),
        )
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(
          Effect.succeed({
            server,
            port: typeof address === "object" && address !== null ? address.port : 0,
          }),
        )
      })
    }),
    ({ server }) =>
      Effect.sync(() => {
        server.closeAllConnections()
        server.close()
      }),
  )

const greetingServer = nodeServer((stream) => stream.end("hello from the node"))

describe("Tunnel.connect over a WebSocket", () => {
  it.scoped(
    "takes its sessions' window growth from the service's pool, and gives it back as they close",
    () =>
      Effect.gen(function* () {
        const eightMiB = Buffer.alloc(8 * 1024 * 1024, 7)
        const { port } = yield* nodeServer((stream) => stream.end(eightMiB))
        const growthPool = new Tunnel.GrowthPool(256 * 1024)
        const tunnel = Tunnel.make(heartbeat, growthPool)
        const twoSessions = Effect.forEach([1, 2], () =>
          Effect.gen(function* () {
            const session = yield* tunnel.connect(`ws://127.0.0.1:${port}/`, {})
            const bytes = yield* Deferred.make<number>()
            // Read at once, as fast as it comes, and left open: a stream finished only one way keeps its growth.
            yield* session.serveStreams((stream) => {
              stream.on("error", () => {}) // the sessions' close, at the end, fails the streams left open
              let count = 0
              stream.on("data", (chunk: Buffer) => {
                count += chunk.length
              })
              stream.on("end", () => Deferred.unsafeDone(bytes, Exit.succeed(count)))
            })
            return yield* Deferred.await(bytes)
          }),
        )
        yield* Effect.scoped(
          Effect.gen(function* () {
            expect(yield* twoSessions).toEqual([eightMiB.length, eightMiB.length])
            // The first session's fast reader grew its window and took the whole pool; the second's could not grow.
            expect(growthPool.used).toBe(256 * 1024)
          }),
        )
        expect(growthPool.used).toBe(0)
      }),
  )

  it.scoped("the node's sessions take their growth from the service's pool too", () =>
    Effect.gen(function* () {
      const growthPool = new Tunnel.GrowthPool(256 * 1024)
      const received = yield* Deferred.make<number>()
      const { port } = yield* nodeServer((stream) => {
        let count = 0
        stream.on("data", (chunk: Buffer) => {
          count += chunk.length
        })
        stream.on("end", () => Deferred.unsafeDone(received, Exit.succeed(count)))
      }, growthPool)
      const eightMiB = Buffer.alloc(8 * 1024 * 1024, 7)
      yield* Effect.scoped(
        Effect.gen(function* () {
          const session = yield* Tunnel.make(heartbeat).connect(`ws://127.0.0.1:${port}/`, {})
          yield* session.serveStreams((stream) => {
            stream.on("error", () => {})
            stream.end(eightMiB)
          })
          expect(yield* Deferred.await(received)).toBe(eightMiB.length)
          expect(growthPool.used).toBe(256 * 1024)
        }),
      )
      // The agent's session is gone; the node's side closes as soon as it hears so.
      yield* Effect.promise(() =>
        waitFor("the node's session to give its growth back", () => growthPool.used === 0),
      )
    }),
  )

  it.scoped("keeps every byte a reader holds on to, where a plain connection reuses its read buffers", () =>
    Effect.gen(function* () {
      // Random bytes: a read buffer reused under a held piece would show another part of them.
      const body = randomBytes(4 * 1024 * 1024)
      const { port } = yield* nodeServer((stream) => stream.end(body))
      const session = yield* Tunnel.make(heartbeat).connect(`ws://127.0.0.1:${port}/`, {})
      const received = yield* Deferred.make<Buffer>()
      yield* session.serveStreams((stream) => {
        stream.on("error", () => {})
        // Holds every piece until the end without copying: a consumer that has not said it takes pieces in place.
        const pieces: Array<Buffer> = []
        stream.on("data", (piece: Buffer) => pieces.push(piece))
        stream.on("end", () => Deferred.unsafeDone(received, Exit.succeed(Buffer.concat(pieces))))
      })
      expect((yield* Deferred.await(received)).equals(body)).toBe(true)
    }),
  )

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

/**
 * A node that answers every upgrade with `answer(key)`, written raw to the socket, then `after` if given. The
 * frames the client sends back are decoded into `controls`; `closed` completes when a client hangs up.
 */
const answeringServer = (answer: (key: string) => string, after?: Buffer, host = "127.0.0.1") =>
  Effect.acquireRelease(
    Effect.async<{
      server: http.Server
      url: string
      controls: Array<{ opcode: number; payload: Buffer }>
      closed: Promise<void>
    }>((resume) => {
      const server = http.createServer()
      const controls: Array<{ opcode: number; payload: Buffer }> = []
      let connectionClosed = () => {}
      const closed = new Promise<void>((resolve) => {
        connectionClosed = resolve
      })
      server.on("upgrade", (req: http.IncomingMessage, socket: Duplex) => {
        socket.on("error", () => {})
        // The server allows half-open connections: the client's FIN is an end, not a close.
        socket.on("end", () => connectionClosed())
        const fromClient = new WebSocketReader(
          {
            onBinary: () => {},
            onControl: (opcode, payload) => controls.push({ opcode, payload }),
            onError: (reason) => controls.push({ opcode: -1, payload: Buffer.from(reason) }),
          },
          "client",
        )
        socket.on("data", (chunk: Buffer) => fromClient.push(chunk))
        socket.write(answer(String(req.headers["sec-websocket-key"])))
        if (after !== undefined) socket.write(after)
      })
      server.listen(0, host, () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        const authority = net.isIPv6(host) ? `[${host}]` : host
        resume(Effect.succeed({ server, url: `ws://${authority}:${port}/`, controls, closed }))
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

  it.scoped("takes no 101 whose Sec-WebSocket-Accept does not answer its key, and hangs up", () =>
    Effect.gen(function* () {
      const { url, closed } = yield* answeringServer(() => switching("dGhlIHNhbXBsZSBub25jZQ=="))
      const error = yield* connectTo(url)
      expect(error).toMatchObject({
        reason: "unreachable",
        message: "wrong Sec-WebSocket-Accept in the answer",
      })
      yield* Effect.promise(() => closed)
    }),
  )

  it.scoped("takes no 101 that upgrades to another protocol", () =>
    Effect.gen(function* () {
      const { url } = yield* answeringServer((key) =>
        switching(acceptValue(key)).replace("Upgrade: websocket", "Upgrade: h2c"),
      )
      expect(yield* connectTo(url)).toMatchObject({
        reason: "unreachable",
        message: "the answer does not upgrade to websocket",
      })
    }),
  )

  it.scoped("reports a refused connection as unreachable, with the network's reason", () =>
    Effect.gen(function* () {
      const closedPort = yield* Effect.promise(
        () =>
          new Promise<number>((resolve) => {
            const probe = net.createServer().listen(0, "127.0.0.1", () => {
              const { port } = probe.address() as net.AddressInfo
              probe.close(() => resolve(port))
            })
          }),
      )
      const error = yield* connectTo(`ws://127.0.0.1:${closedPort}/`)
      expect(error.reason).toBe("unreachable")
      expect(error.message).toMatch(/ECONNREFUSED/)
    }),
  )

  it.scoped("connects to an IPv6 literal", () =>
    Effect.gen(function* () {
      const { url } = yield* answeringServer((key) => switching(acceptValue(key)), undefined, "::1")
      const session = yield* Tunnel.make(heartbeat).connect(url, {})
      expect(session.canOpenStream()).toBe(true)
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

  it.scoped("reads http:// as ws://, and refuses a URL of another scheme", () =>
    Effect.gen(function* () {
      const { port } = yield* greetingServer
      const session = yield* Tunnel.make(heartbeat).connect(`http://127.0.0.1:${port}/`, {})
      expect(yield* session.ping).toBeGreaterThanOrEqual(0)
      expect(yield* connectTo(`ftp://127.0.0.1:${port}/`)).toMatchObject({
        reason: "unreachable",
        message: `not a ws:// or wss:// URL: ftp://127.0.0.1:${port}/`,
      })
    }),
  )

  it.scoped("takes a 101 without Upgrade for what it is: no WebSocket", () =>
    Effect.gen(function* () {
      const { url, closed } = yield* answeringServer(() => "HTTP/1.1 101 Switching Protocols\r\n\r\n")
      expect(yield* connectTo(url)).toMatchObject({
        reason: "unreachable",
        message: "the answer does not upgrade to websocket",
      })
      yield* Effect.promise(() => closed)
    }),
  )

  it.scoped("closes a connection the refusing server would keep alive", () =>
    Effect.gen(function* () {
      const { url, closed } = yield* answeringServer(
        () => "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
      )
      expect(yield* connectTo(url)).toMatchObject({ reason: "refused", status: 503 })
      yield* Effect.promise(() => closed)
    }),
  )

  it.scoped("answers the node's ping with a masked pong, and its close with the same code", () =>
    Effect.gen(function* () {
      const serverFrame = (opcode: number, payload: Buffer) =>
        Buffer.concat([Buffer.from([0x80 | opcode, payload.length]), payload])
      const { url, controls, closed } = yield* answeringServer(
        (key) => switching(acceptValue(key)),
        Buffer.concat([
          serverFrame(Opcode.Ping, Buffer.from("are you there")),
          serverFrame(Opcode.Close, Buffer.from([0x03, 0xe9])),
        ]),
      )
      const session = yield* Tunnel.make(heartbeat).connect(url, {})
      expect(yield* session.closed).toEqual({ _tag: "TransportClosed" })
      yield* Effect.promise(() => closed)
      // The reader of the node's side took both frames as a client's: masked (with the zero key).
      expect(controls).toEqual([
        { opcode: Opcode.Pong, payload: Buffer.from("are you there") },
        { opcode: Opcode.Close, payload: Buffer.from([0x03, 0xe9]) },
      ])
    }),
  )

  it.scoped("stops at once when interrupted during the handshake, and hangs up on the silent node", () =>
    Effect.gen(function* () {
      let hungUp = () => {}
      const hangUp = new Promise<void>((resolve) => {
        hungUp = resolve
      })
      const silent = net.createServer((socket) => socket.on("error", () => {}).on("close", () => hungUp()))
      yield* Effect.acquireRelease(
        Effect.promise(() => new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve))),
        () => Effect.sync(() => silent.close()),
      )
      const url = `ws://127.0.0.1:${(silent.address() as net.AddressInfo).port}/`
      const fiber = yield* Effect.fork(Effect.scoped(Tunnel.make(heartbeat).connect(url, {})))
      yield* Effect.promise(() => new Promise<void>((resolve) => silent.once("connection", () => resolve())))
      // Well within the 30 s the handshake may take.
      yield* Fiber.interrupt(fiber).pipe(
        Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "stuck" }),
      )
      yield* Effect.promise(() => hangUp)
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

describe("Pico's WebSocket client through a forward proxy", () => {
  it("asks for the URL's host, sends Host without a default port, the path and the URL's credentials", async () => {
    const heads: Array<string> = []
    const proxy = net.createServer((socket) => {
      let buffered = ""
      socket.on("error", () => {})
      socket.on("data", (chunk: Buffer) => {
        buffered += chunk.toString("latin1")
        const end = buffered.indexOf("\r\n\r\n")
        if (end < 0) return
        const head = buffered.slice(0, end)
        buffered = buffered.slice(end + 4)
        heads.push(head)
        // The first head is the CONNECT, the second the WebSocket handshake the tunnel carries.
        if (heads.length === 1) socket.write("HTTP/1.1 200 Connection established\r\n\r\n")
        else socket.write(switching(acceptValue(/sec-websocket-key: (\S+)/i.exec(head)?.[1] ?? "")))
      })
    })
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve))
    const proxyUrl = new URL(`http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`)
    const outcome = await new Promise<HandshakeOutcome>((resolve) =>
      openWebSocket(
        {
          url: "ws://me:p%40ss@pico.test/prefix/pico/v1/listener/e?x=1",
          headers: { "x-extra": "1" },
          proxy: proxyUrl,
          timeoutMs: 5_000,
        },
        resolve,
      ),
    )
    if (outcome._tag === "Open") outcome.socket.destroy()
    proxy.close()
    // The proxy's connection is made by its CONNECT, not with reused read buffers.
    expect(outcome).toMatchObject({ _tag: "Open", lentReads: undefined })
    expect(heads[0]?.split("\r\n")[0]).toBe("CONNECT pico.test:80 HTTP/1.1")
    const request = heads[1]?.split("\r\n") ?? []
    expect(request[0]).toBe("GET /prefix/pico/v1/listener/e?x=1 HTTP/1.1")
    expect(request).toContain("Host: pico.test")
    expect(request).toContain(`Authorization: Basic ${Buffer.from("me:p@ss").toString("base64")}`)
    expect(request).toContain("x-extra: 1")
  })
})

describe("Pico's WebSocket client's own timeout", () => {
  /** A port whose connections get `onConnection`; closed once `use` is done with its URL. */
  const withServer = async <A>(
    onConnection: (socket: net.Socket) => void,
    use: (url: string) => Promise<A>,
  ): Promise<A> => {
    const server = net.createServer((socket) => {
      socket.on("error", () => {})
      onConnection(socket)
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    try {
      return await use(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`)
    } finally {
      server.close()
    }
  }
  const handshake = (options: Omit<WebSocketClientOptions, "headers" | "timeoutMs">) =>
    new Promise<HandshakeOutcome>((resolve) =>
      openWebSocket({ ...options, headers: {}, timeoutMs: 200 }, resolve),
    )
  const silence = () => {}

  it("gives up on a node that accepts the connection and never answers", async () => {
    const outcome = await withServer(silence, (url) => handshake({ url }))
    expect(outcome).toEqual({ _tag: "Unreachable", message: "opening handshake timed out after 200ms" })
  })

  it("names the forward proxy when it is the proxy that never answers CONNECT", async () => {
    await withServer(silence, async (proxy) => {
      expect(await handshake({ url: "ws://pico.test:8001/", proxy: new URL(proxy) })).toMatchObject({
        _tag: "Unreachable",
        message: `proxy ${proxy}: no answer to CONNECT pico.test:8001 within 200ms`,
      })
    })
  })

  it("closes its connection to a proxy that has not answered CONNECT when the attempt is abandoned", async () => {
    const { watch, closed } = closeWatch()
    let asked = () => {}
    const connectReceived = new Promise<void>((resolve) => {
      asked = resolve
    })
    await withServer(
      (socket) => {
        watch(socket)
        socket.once("data", () => asked())
      },
      async (proxy) => {
        const abandon = openWebSocket(
          { url: "ws://pico.test:8001/", headers: {}, proxy: new URL(proxy), timeoutMs: 30_000 },
          () => {},
        )
        await connectReceived
        abandon()
        await closed
      },
    )
  })

  it("takes a refusal whose body is slow for a refusal, with the status line, within a second", async () => {
    const refuseSlowly = (socket: net.Socket) =>
      socket.once("data", () =>
        socket.write(
          "HTTP/1.1 403 Forbidden\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 100\r\n\r\n{",
        ),
      )
    const slow = (timeoutMs: number) =>
      withServer(
        refuseSlowly,
        (url) =>
          new Promise<HandshakeOutcome>((resolve) => openWebSocket({ url, headers: {}, timeoutMs }, resolve)),
      )
    expect(await slow(200)).toMatchObject({ _tag: "Refused", status: 403, message: "HTTP 403 Forbidden" })
    // The status decides: a body that never comes does not hold the answer for the whole handshake timeout.
    const started = performance.now()
    const outcome = await slow(30_000)
    expect(performance.now() - started).toBeLessThan(3_000)
    expect(outcome).toEqual({
      _tag: "Refused",
      status: 403,
      message: "HTTP 403 Forbidden",
      headers: { "set-cookie": "a=1, b=2", "content-length": "100" },
    })
  })

  it("closes the socket of an answer that came, when the attempt is abandoned before it is taken", async () => {
    const { watch, closed: closedByClient } = closeWatch()
    const answer = (socket: net.Socket) => {
      watch(socket)
      socket.once("data", (head: Buffer) => {
        const key = /sec-websocket-key: (\S+)/i.exec(head.toString("latin1"))?.[1] ?? ""
        socket.write(switching(acceptValue(key)))
      })
    }
    await withServer(answer, async (url) => {
      const opened = await new Promise<{ outcome: HandshakeOutcome; abandon: () => void }>((resolve) => {
        const abandon = openWebSocket({ url, headers: {}, timeoutMs: 5_000 }, (outcome) =>
          resolve({ outcome, abandon }),
        )
      })
      // A plain connection of its own: its reads go into a reused buffer (LentReads).
      expect(opened.outcome).toMatchObject({ _tag: "Open", lentReads: expect.any(LentReads) })
      opened.abandon()
      await closedByClient
    })
  })
})

describe("Pico's WebSocket client over TLS (wss://)", () => {
  afterEach(closeScriptedServers)

  it("checks the node's certificate against its CA, names the host (SNI) and presents its own certificate", async () => {
    const certificates = makeCertificates()
    const seen: Array<{ servername: string | false | null; clientAuthorized: boolean }> = []
    const server = https.createServer({
      cert: readFileSync(certificates.serverCert),
      key: readFileSync(certificates.serverKey),
      ca: certificates.ca,
      requestCert: true,
      rejectUnauthorized: false,
    })
    server.on("secureConnection", (socket: tls.TLSSocket) =>
      seen.push({ servername: socket.servername, clientAuthorized: socket.authorized }),
    )
    server.on("upgrade", (req: http.IncomingMessage, socket: Duplex) =>
      socket.end(switching(acceptValue(String(req.headers["sec-websocket-key"])))),
    )
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const port = (server.address() as net.AddressInfo).port
    const handshake = (url: string, tls?: WebSocketClientOptions["tls"], proxyPort?: number) =>
      new Promise<HandshakeOutcome>((resolve) =>
        openWebSocket(
          {
            url,
            headers: {},
            tls,
            proxy: proxyPort === undefined ? undefined : new URL(`http://127.0.0.1:${proxyPort}`),
            timeoutMs: 5_000,
          },
          resolve,
        ),
      )
    try {
      const trusted = await handshake(`wss://localhost:${port}/`, {
        ca: certificates.ca,
        cert: readFileSync(certificates.clientCert),
        key: readFileSync(certificates.clientKey),
      })
      if (trusted._tag === "Open") trusted.socket.destroy()
      // Over TLS, Node's agent connects: Node's own reads.
      expect(trusted).toMatchObject({ _tag: "Open", lentReads: undefined })
      // An IP address is not a server name: no SNI for it.
      const byAddress = await handshake(`wss://127.0.0.1:${port}/`, { ca: certificates.ca })
      if (byAddress._tag === "Open") byAddress.socket.destroy()
      expect(byAddress._tag).toBe("Open")
      expect(seen).toEqual([
        { servername: "localhost", clientAuthorized: true },
        { servername: false, clientAuthorized: false },
      ])
      // Through a forward proxy that relays CONNECT to the node: TLS end to end, the same checks and SNI.
      const proxyPort = await scriptedServer((socket, head) => {
        const [, target] = /^CONNECT \S+:(\d+) /.exec(head) ?? []
        const node = net.connect(Number(target), "127.0.0.1", () => {
          socket.write("HTTP/1.1 200 Connection established\r\n\r\n")
          socket.pipe(node).pipe(socket)
        })
        node.on("error", () => socket.destroy())
      })
      for (const host of ["localhost", "127.0.0.1"]) {
        const proxied = await handshake(`wss://${host}:${port}/`, { ca: certificates.ca }, proxyPort)
        if (proxied._tag === "Open") proxied.socket.destroy()
        expect(proxied).toMatchObject({ _tag: "Open" })
      }
      expect(seen.slice(2)).toEqual([
        { servername: "localhost", clientAuthorized: false },
        { servername: false, clientAuthorized: false },
      ])
      // Without the CA, the node's certificate is not trusted.
      expect(await handshake(`wss://localhost:${port}/`)).toMatchObject({
        _tag: "Unreachable",
        message: expect.stringMatching(/self-signed certificate|unable to verify/),
      })
    } finally {
      server.closeAllConnections()
      server.close()
    }
  })
})
