import { type IncomingMessage, STATUS_CODES } from "node:http"
import type { createConnection } from "node:net"
import type { Duplex } from "node:stream"
import { Context, Duration, Effect, Layer, Schema, type Scope } from "effect"
import WebSocket from "ws"
import { connectThroughProxy } from "./Tunnel/ForwardProxy.js"
import { serveWebSocket } from "./Tunnel/ServerWebSocket.js"
import type { CloseReason, Session } from "./Tunnel/Session.js"
import { acceptWebSocket } from "./Tunnel/WebSocketHandshake.js"
import { attachWebSocket } from "./Tunnel/WebSocketTransport.js"

export type { CloseReason, Session as TunnelSession, TunnelStream } from "./Tunnel/Session.js"

/** A tunnel could not be established: the server was unreachable, or it refused us with an HTTP status. */
export class TunnelConnectError extends Schema.TaggedError<TunnelConnectError>()("TunnelConnectError", {
  /** The HTTP status the server answered the upgrade with; absent when no HTTP answer came at all. */
  status: Schema.optional(Schema.Number),
  /** The headers of that answer (names lower-case, repeated ones joined with ", "), to tell who answered. */
  headers: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  /** The server's JSON `error`, else the status line ("HTTP 404 Not Found"); the network error without one. */
  message: Schema.String,
}) {}

/** An upgrade request was not a valid WebSocket handshake; it has been answered with a 400. */
export class TunnelHandshakeError extends Schema.TaggedError<TunnelHandshakeError>()("TunnelHandshakeError", {
  message: Schema.String,
}) {}

export interface HeartbeatSettings {
  /** Milliseconds between pings. */
  readonly interval: number
  /** Milliseconds a ping may go unanswered before the session is closed. */
  readonly timeout: number
}

/**
 * Multiplexed sessions over WebSockets (yamux framing): the node accepts them, the agent opens them. Both sides
 * ping on an interval so a silently dead network path is noticed within interval + timeout.
 */
export class Tunnel extends Context.Tag("pico/Tunnel")<
  Tunnel,
  {
    /**
     * Completes the WebSocket handshake of an upgrade request (Node's `upgrade` event: request, socket and the
     * bytes read past the request) and runs the server side of a session over it until the scope closes.
     */
    readonly serve: (
      req: IncomingMessage,
      socket: Duplex,
      head: Buffer,
    ) => Effect.Effect<Session, TunnelHandshakeError, Scope.Scope>
    /**
     * Opens the client side of a session; the session lives until the scope closes. With `proxy` (an http://
     * forward proxy) the connection goes through the proxy's CONNECT tunnel, TLS still end to end for wss.
     */
    readonly connect: (
      url: string,
      headers: Readonly<Record<string, string>>,
      tls?: ClientTls,
      proxy?: URL,
    ) => Effect.Effect<Session, TunnelConnectError, Scope.Scope>
  }
>() {}

/** Completes with the reason once the session has closed. */
export const awaitClose = (session: Session): Effect.Effect<CloseReason> =>
  Effect.async<CloseReason>((resume) => {
    if (session.closeReason !== undefined) return resume(Effect.succeed(session.closeReason))
    session.onClose((reason) => resume(Effect.succeed(reason)))
  })

/** Completes once the peer has sent GoAway (it will take no new streams from us). */
export const awaitGoAway = (session: Session): Effect.Effect<number> =>
  Effect.async<number>((resume) => {
    // A GoAway that arrived before we asked has already made the session refuse new streams.
    if (!session.closed && !session.canOpenStream()) return resume(Effect.succeed(0))
    session.onGoAway((code) => resume(Effect.succeed(code)))
  })

/** Human-readable reason for logs. */
export const describeClose = (reason: CloseReason): string =>
  "message" in reason ? `${reason._tag}: ${reason.message}` : reason._tag

const heartbeat = (session: Session, settings: HeartbeatSettings) =>
  Effect.gen(function* () {
    const rtt = yield* Effect.tryPromise(() => session.ping()).pipe(
      Effect.timeout(Duration.millis(settings.timeout)),
      Effect.option,
    )
    if (rtt._tag === "None" && !session.closed) {
      yield* Effect.logWarning("heartbeat timed out; closing session").pipe(
        Effect.annotateLogs("timeout_ms", settings.timeout),
      )
      session.close("heartbeat timeout")
    }
  }).pipe(
    Effect.delay(Duration.millis(settings.interval)),
    Effect.repeat({ while: () => !session.closed }),
    Effect.annotateLogs("subsystem", "tunnel"),
  )

/** Ties a session to the scope: heartbeats run while it lives, and the scope's end closes it. */
const runSession = (session: Session, settings: HeartbeatSettings) =>
  Effect.gen(function* () {
    yield* Effect.addFinalizer(() => Effect.sync(() => session.close("session ended")))
    yield* Effect.forkScoped(heartbeat(session, settings))
    return session
  })

const readErrorBody = (response: IncomingMessage): Promise<string> =>
  new Promise((resolve) => {
    const chunks: Array<Buffer> = []
    let size = 0
    response.on("data", (chunk: Buffer) => {
      // A refusal body is a short JSON error; never hold more than a few KiB of it.
      if (size < 4096) chunks.push(chunk)
      size += chunk.length
    })
    response.on("end", () => resolve(Buffer.concat(chunks).toString("utf8").slice(0, 4096)))
    response.on("error", () => resolve(""))
  })

/**
 * The server's own reason (Pico answers `{"error": "..."}`), else the status line: another server's HTML page
 * says nothing useful in a one-line log.
 */
const refusalMessage = (status: number, body: string): string => {
  try {
    const parsed = JSON.parse(body) as { error?: unknown }
    if (typeof parsed.error === "string") return parsed.error
  } catch {
    // Not JSON: fall through to the status line.
  }
  return `HTTP ${status} ${STATUS_CODES[status] ?? ""}`.trimEnd()
}

const flatHeaders = (response: IncomingMessage): Record<string, string> => {
  const flat: Record<string, string> = {}
  for (const [name, value] of Object.entries(response.headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(", ") : value
  }
  return flat
}

/** TLS for wss:// connections: a CA to trust (PEM) and a client certificate to present (mTLS). */
export interface ClientTls {
  readonly ca?: Buffer
  readonly cert?: Buffer
  readonly key?: Buffer
}

const HANDSHAKE_TIMEOUT = 30_000

const openWebSocket = (
  url: string,
  headers: Readonly<Record<string, string>>,
  tls: ClientTls = {},
  proxy?: URL,
) =>
  Effect.async<WebSocket, TunnelConnectError>((resume) => {
    const ws = new WebSocket(url, {
      ...tls,
      headers: { ...headers },
      perMessageDeflate: false,
      handshakeTimeout: HANDSHAKE_TIMEOUT,
      generateMask: (mask: Buffer) => void mask.fill(0),
      // ws hands this to http.request, which also takes the asynchronous (options, callback) form that
      // @types/ws does not declare.
      ...(proxy === undefined
        ? {}
        : {
            createConnection: connectThroughProxy(
              proxy,
              url.startsWith("wss:"),
              HANDSHAKE_TIMEOUT,
            ) as unknown as typeof createConnection,
          }),
    })
    ws.once("open", () => resume(Effect.succeed(ws)))
    ws.once("unexpected-response", (request, response) => {
      const status = response.statusCode ?? 0
      void readErrorBody(response).then((body) => {
        request.destroy()
        resume(
          Effect.fail(
            new TunnelConnectError({
              status,
              headers: flatHeaders(response),
              message: refusalMessage(status, body),
            }),
          ),
        )
      })
    })
    ws.once("error", (error) => resume(Effect.fail(new TunnelConnectError({ message: error.message }))))
    return Effect.sync(() => ws.terminate())
  })

export const make = (settings: HeartbeatSettings) =>
  Tunnel.of({
    serve: (req, socket, head) =>
      Effect.suspend(() => {
        const refused = acceptWebSocket(req, socket)
        return refused === undefined
          ? runSession(serveWebSocket(socket, head, { role: "server" }), settings)
          : Effect.fail(new TunnelHandshakeError({ message: refused }))
      }),
    connect: (url, headers, tls, proxy) =>
      Effect.acquireRelease(openWebSocket(url, headers, tls, proxy), (ws) =>
        Effect.sync(() => ws.terminate()),
      ).pipe(Effect.flatMap((ws) => runSession(attachWebSocket(ws, { role: "client" }), settings))),
  })

export const layer = (settings: HeartbeatSettings): Layer.Layer<Tunnel> =>
  Layer.succeed(Tunnel, make(settings))
