import type { IncomingMessage } from "node:http"
import type { Duplex } from "node:stream"
import { Context, type Duration, Effect, Layer, Queue, Schema, type Scope } from "effect"
import { Heartbeats } from "./Tunnel/internal/Heartbeats.js"
import { HttpConnections } from "./Tunnel/internal/HttpConnections.js"
import { MemoryChannel } from "./Tunnel/internal/MemoryChannel.js"
import {
  type CloseReason,
  GrowthPool,
  Session,
  type SessionOptions,
  type TunnelStream,
} from "./Tunnel/internal/Session.js"
import { type ClientTls, openWebSocket } from "./Tunnel/internal/WebSocketClient.js"
import { acceptWebSocket } from "./Tunnel/internal/WebSocketHandshake.js"
import { runWebSocketSession } from "./Tunnel/internal/WebSocketSession.js"

export { type CloseReason, GrowthPool, type TunnelStream } from "./Tunnel/internal/Session.js"
export type { ClientTls } from "./Tunnel/internal/WebSocketClient.js"

/** Why the tunnel could not do what was asked. */
export const TunnelFailure = Schema.Literal(
  /** The session has closed, or the peer sent GoAway and takes no new streams. */
  "closed",
  /** A ping went unanswered for the heartbeat timeout. */
  "timeout",
  /** An upgrade request was not a valid WebSocket handshake; it has been answered with a 400. */
  "handshake",
)

export class TunnelError extends Schema.TaggedError<TunnelError>()("TunnelError", {
  reason: TunnelFailure,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect),
}) {}

/** A tunnel could not be established: the server was unreachable, or it refused us with an HTTP status. */
export class TunnelConnectError extends Schema.TaggedError<TunnelConnectError>()("TunnelConnectError", {
  /** "unreachable": no HTTP answer came at all; "refused": the server answered the upgrade with `status`. */
  reason: Schema.Literal("unreachable", "refused"),
  /** The HTTP status the server answered the upgrade with; absent when no HTTP answer came at all. */
  status: Schema.optional(Schema.Number),
  /** The headers of that answer (names lower-case, repeated ones joined with ", "), to tell who answered. */
  headers: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String })),
  /** The server's JSON `error`, else the status line ("HTTP 404 Not Found"); the network error without one. */
  message: Schema.String,
  cause: Schema.optional(Schema.Defect),
}) {}

export interface HeartbeatSettings {
  /** Time between pings. */
  readonly interval: Duration.DurationInput
  /** Time a ping may go unanswered before the session is closed. */
  readonly timeout: Duration.DurationInput
}

/**
 * One multiplexed session (yamux over a WebSocket), as the rest of Pico sees it. Streams are Node Duplexes with
 * backpressure: bytes flow through them with no Effect per chunk; the Effects here are per session and per
 * request.
 */
export interface TunnelSession {
  /** A new stream to the peer; fails when the session has closed or the peer takes no new streams. */
  readonly openStream: Effect.Effect<TunnelStream, TunnelError>
  /** The round-trip time of a ping, in milliseconds. */
  readonly ping: Effect.Effect<number, TunnelError>
  /** Tells the peer to open no more streams here (sent once); streams opened from this side still work. */
  readonly goAway: Effect.Effect<void>
  readonly close: (message: string) => Effect.Effect<void>
  /** Completes with the reason once the session has closed (at once if it has). */
  readonly closed: Effect.Effect<CloseReason>
  /**
   * Calls `listener` with the reason once the session has closed (at once if it has): for whoever keeps many
   * sessions, where a fiber waiting on `closed` for each would cost more memory than the session itself.
   */
  readonly whenClosed: (listener: (reason: CloseReason) => void) => void
  /** Completes once the peer has sent GoAway: it is going, and takes no new streams from us. */
  readonly peerGoingAway: Effect.Effect<void>
  /** Hands every stream the peer opens to `handler` while the scope lives; without one they are refused. */
  readonly serveStreams: (handler: (stream: TunnelStream) => void) => Effect.Effect<void, never, Scope.Scope>
  /** Whether `openStream` would succeed now: synchronous, for picking an upstream per request. */
  readonly canOpenStream: () => boolean
  /**
   * HTTP/1.1 over this session's streams, kept alive: what the proxy sends requests through. The far end pipes
   * each stream to its service untouched.
   */
  readonly http: HttpConnections
}

/** Human-readable reason for logs. */
export const describeClose = (reason: CloseReason): string =>
  "message" in reason ? `${reason._tag}: ${reason.message}` : reason._tag

const closedError = (cause: unknown) =>
  new TunnelError({
    reason: "closed",
    message: cause instanceof Error ? cause.message : String(cause),
    cause,
  })

/** The Effect-shaped face of a session. */
const wrap = (session: Session): TunnelSession => {
  let http: HttpConnections | undefined
  return {
    openStream: Effect.try({ try: () => session.openStream(), catch: closedError }),
    ping: Effect.tryPromise({ try: () => session.ping(), catch: closedError }),
    goAway: Effect.sync(() => session.goAway()),
    close: (message) => Effect.sync(() => session.close(message)),
    closed: Effect.async<CloseReason>((resume) => {
      const off = session.onClose((reason) => resume(Effect.succeed(reason)))
      return Effect.sync(off)
    }),
    whenClosed: (listener) => {
      session.onClose(listener)
    },
    peerGoingAway: Effect.async<void>((resume) => {
      // A GoAway that arrived before we asked has already made the session refuse new streams.
      if (!session.closed && !session.canOpenStream()) return resume(Effect.void)
      const off = session.onGoAway(() => resume(Effect.void))
      return Effect.sync(off)
    }),
    serveStreams: (handler) =>
      Effect.acquireRelease(
        Effect.sync(() => session.onStream(handler)),
        () => Effect.sync(() => session.onStream(undefined)),
      ),
    canOpenStream: () => session.canOpenStream(),
    get http() {
      http ??= new HttpConnections(() => session.openStream())
      return http
    },
  }
}

/** What runs beside a session for as long as it lives. */
export interface RunOptions {
  /** The tunnel's heartbeats, which watch the session. */
  readonly heartbeats: Heartbeats
  /** Epoch ms at which the session ends (its credential expires): GoAway first, so the peer learns why. */
  readonly expiresAt?: number | undefined
}

/**
 * Ties a session to the scope: heartbeats (and the expiry) run while it lives, and the scope's end closes it and
 * its HTTP connections.
 */
const runSession = (
  session: Session,
  options: RunOptions,
): Effect.Effect<TunnelSession, never, Scope.Scope> =>
  Effect.gen(function* () {
    const tunnel = wrap(session)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        tunnel.http.destroy()
        session.close("session ended")
      }),
    )
    yield* options.heartbeats.watch(session, options.expiresAt)
    return tunnel
  })

/** How long reaching the node and its WebSocket handshake may take, a forward proxy's CONNECT included. */
const HANDSHAKE_TIMEOUT_MS = 30_000

/** The agent's end: streams its node opens before the agent serves them wait for it (see holdUnserved). */
const clientSide: SessionOptions = { role: "client", holdUnserved: true }

const openSession = (
  url: string,
  headers: Readonly<Record<string, string>>,
  options: SessionOptions,
  tls?: ClientTls,
  proxy?: URL,
) =>
  Effect.async<{ readonly socket: Duplex; readonly session: Session }, TunnelConnectError>((resume) => {
    const abandon = openWebSocket(
      { url, headers, tls, proxy, timeoutMs: HANDSHAKE_TIMEOUT_MS },
      (outcome) => {
        switch (outcome._tag) {
          case "Open":
            // The session must be reading before this callback returns: the node may send frames (a stream for
            // a request already waiting) right behind its handshake answer.
            return resume(
              Effect.succeed({
                socket: outcome.socket,
                session: runWebSocketSession(outcome.socket, outcome.head, options, outcome.lentReads),
              }),
            )
          case "Refused":
            return resume(
              Effect.fail(
                new TunnelConnectError({
                  reason: "refused",
                  status: outcome.status,
                  headers: outcome.headers,
                  message: outcome.message,
                }),
              ),
            )
          case "Unreachable":
            return resume(
              Effect.fail(
                new TunnelConnectError({
                  reason: "unreachable",
                  message: outcome.message,
                  cause: outcome.cause,
                }),
              ),
            )
        }
      },
    )
    return Effect.sync(abandon)
  })

/**
 * Multiplexed sessions over WebSockets (yamux framing): the node accepts them, the agent opens them. Both sides
 * ping on an interval so a silently dead network path is noticed within interval + timeout.
 */
export class Tunnel extends Context.Tag("pico/Tunnel")<
  Tunnel,
  {
    /**
     * Completes the WebSocket handshake of an upgrade request (Node's `upgrade` event: request, socket and the
     * bytes read past the request) and runs the server side of a session over it until the scope closes or the
     * session expires.
     */
    readonly serve: (
      req: IncomingMessage,
      socket: Duplex,
      head: Buffer,
      options?: { readonly expiresAt?: number | undefined },
    ) => Effect.Effect<TunnelSession, TunnelError, Scope.Scope>
    /**
     * Opens the client side of a session; the session lives until the scope closes. With `proxy` (an http://
     * forward proxy) the connection goes through the proxy's CONNECT tunnel, TLS still end to end for wss.
     */
    readonly connect: (
      url: string,
      headers: Readonly<Record<string, string>>,
      tls?: ClientTls,
      proxy?: URL,
    ) => Effect.Effect<TunnelSession, TunnelConnectError, Scope.Scope>
  }
>() {}

/**
 * What all the sessions of one Tunnel service (a process's) may buffer in all beyond their streams' initial
 * windows: sixteen sessions' growth budgets (16 MiB each). A session that finds it used up keeps 256 KiB windows.
 */
export const GROWTH_POOL_SIZE = 256 * 1024 * 1024

/** The tunnel service over WebSockets; its sessions share `growthPool` (GROWTH_POOL_SIZE unless given). */
export const make = (heartbeat: HeartbeatSettings, growthPool = new GrowthPool(GROWTH_POOL_SIZE)) => {
  const heartbeats = new Heartbeats(heartbeat)
  const serverSide: SessionOptions = { role: "server", growthPool }
  const agentSide: SessionOptions = { ...clientSide, growthPool }
  return Tunnel.of({
    serve: (req, socket, head, options) =>
      Effect.suspend(() => {
        const refused = acceptWebSocket(req, socket)
        return refused === undefined
          ? runSession(runWebSocketSession(socket, head, serverSide), {
              heartbeats,
              expiresAt: options?.expiresAt,
            })
          : Effect.fail(new TunnelError({ reason: "handshake", message: refused }))
      }),
    connect: (url, headers, tls, proxy) =>
      // The handshake itself may be interrupted (an agent stopped while it connects); openSession's canceler
      // then closes whatever it had opened.
      Effect.acquireRelease(
        Effect.interruptible(openSession(url, headers, agentSide, tls, proxy)),
        ({ socket }) => Effect.sync(() => socket.destroy()),
      ).pipe(Effect.flatMap(({ session }) => runSession(session, { heartbeats }))),
  })
}

export const layer = (heartbeat: HeartbeatSettings, growthPool?: GrowthPool): Layer.Layer<Tunnel> =>
  Layer.succeed(Tunnel, make(heartbeat, growthPool))

// --- In memory ---

/** An in-memory link between two sessions: `cut` stops carrying bytes either way, as a network that fails. */
export interface MemoryLink {
  readonly client: TunnelSession
  readonly server: TunnelSession
  /** Stops delivering bytes in both directions (nothing is closed: the peers just hear nothing). */
  readonly cut: Effect.Effect<void>
  readonly heal: Effect.Effect<void>
}

/**
 * Two ends of a tunnel in one process, with no sockets: each runs the same session logic (heartbeats, GoAway,
 * expiry on the server side) as over a WebSocket, so it can be tested under TestClock.
 */
export const memoryLink = (
  heartbeat: HeartbeatSettings,
  server: { readonly expiresAt?: number | undefined } = {},
): Effect.Effect<MemoryLink, never, Scope.Scope> =>
  Effect.gen(function* () {
    const toServer = new MemoryChannel()
    const toClient = new MemoryChannel()
    const clientSession = new Session(toServer, clientSide)
    const serverSession = new Session(toClient, { role: "server" })
    toServer.peer = serverSession
    toClient.peer = clientSession
    const set = (paused: boolean) =>
      Effect.sync(() => {
        for (const channel of [toServer, toClient]) {
          if (paused) channel.paused = true
          else channel.resume()
        }
      })
    const heartbeats = new Heartbeats(heartbeat)
    return {
      client: yield* runSession(clientSession, { heartbeats }),
      server: yield* runSession(serverSession, { heartbeats, expiresAt: server.expiresAt }),
      cut: set(true),
      heal: set(false),
    }
  })

/** A session a `layerMemory` tunnel connected: what the client asked for, and both ends. */
export interface MemoryConnection {
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly link: MemoryLink
}

/** The sessions a `layerMemory` tunnel connected, in order, for a test to play the server's part. */
export class TunnelMemory extends Context.Tag("pico/TunnelMemory")<
  TunnelMemory,
  { readonly accepted: Queue.Dequeue<MemoryConnection> }
>() {}

/**
 * A tunnel whose `connect` links to an in-memory server end (taken from `TunnelMemory.accepted`) instead of a
 * WebSocket: agents run against it with no node and no socket. It serves no WebSocket upgrades.
 */
export const layerMemory = (heartbeat: HeartbeatSettings): Layer.Layer<Tunnel | TunnelMemory> =>
  Layer.effectContext(
    Effect.map(Queue.unbounded<MemoryConnection>(), (accepted) =>
      Context.make(TunnelMemory, TunnelMemory.of({ accepted })).pipe(
        Context.add(
          Tunnel,
          Tunnel.of({
            serve: () => Effect.dieMessage("Tunnel.layerMemory serves no WebSocket upgrades"),
            connect: (url, headers) =>
              Effect.tap(memoryLink(heartbeat), (link) => Queue.offer(accepted, { url, headers, link })).pipe(
                Effect.map((link) => link.client),
              ),
          }),
        ),
      ),
    ),
  )
