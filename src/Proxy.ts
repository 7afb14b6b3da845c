import * as http from "node:http"
import * as https from "node:https"
import type { AddressInfo, Socket } from "node:net"
import type { Duplex } from "node:stream"
import { Context, Duration, Effect, FiberSet, Layer, Option } from "effect"
import * as AccessLog from "./AccessLog.js"
import { Auth, type AuthError } from "./Auth.js"
import { ClusterKeys } from "./ClusterKeys.js"
import { dialAddress, type HostPort } from "./Domain/Address.js"
import { type EndpointId, isValidEndpointId } from "./Domain/EndpointId.js"
import { type EndpointKind, tcpUpgradeToken } from "./Domain/EndpointKind.js"
import { Inspector } from "./Inspector.js"
import { errorBody, writeJsonToSocket } from "./internal/JsonResponse.js"
import {
  type ClientLimits,
  closeAfterAnswer,
  closesAfterAnswer,
  defaultClientLimits,
  makeListener,
  owesEarlierResponse,
  refusedStatus,
} from "./internal/Listener.js"
import type { ConfigError } from "./PicoConfig/ConfigError.js"
import type { TlsFiles } from "./PicoConfig/KeyMaterial.js"
import { endpointIdFromHeaders } from "./Proxy/EndpointId.js"
import { closesConnection, ProxyError, transferCodingError, writeError } from "./Proxy/Errors.js"
import {
  type Attempt,
  type AttemptOutcome,
  attempt,
  clientGone,
  type Exchange,
  hasNoBody,
  newExchange,
  type UpgradeTarget,
} from "./Proxy/Forward.js"
import {
  clientIp,
  forwardedByHeader,
  type HeaderPolicy,
  replayHeader,
  upstreamRequestHeaders,
} from "./Proxy/Headers.js"
import * as ProxyMetrics from "./Proxy/Metrics.js"
import * as PassThrough from "./Proxy/PassThrough.js"
import * as PeerProof from "./Proxy/PeerProof.js"
import { requestIdOf } from "./Proxy/RequestId.js"
import { normalizeTarget } from "./Proxy/RequestTarget.js"
import * as TcpTraffic from "./Proxy/TcpTraffic.js"
import { sendThroughTunnel, sendThroughTunnelEffect } from "./Proxy/TunnelExchange.js"
import { type ClusterNode, Registry, type Upstream } from "./Registry.js"
import { Shutdown } from "./Shutdown.js"

export { ProxyError, type ProxyFailure } from "./Proxy/Errors.js"

/**
 * Routes proxy-client requests to upstreams: resolves the endpoint id, picks an upstream and streams the exchange
 * through its tunnel, or through the node that holds it. Failures are answered with a JSON `{"error": ...}` body,
 * never thrown.
 */
export class ProxyHandler extends Context.Tag("pico/Proxy")<
  ProxyHandler,
  {
    /** Serves a request (in fibers of the handler's own, when it needs any). */
    readonly handle: (req: http.IncomingMessage, res: http.ServerResponse) => void
    /** Serves a request the node's own replay of a captured one sent: it alone may say what it replays. */
    readonly handleReplay: (req: http.IncomingMessage, res: http.ServerResponse) => void
    readonly handleUpgrade: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void
    /** False for a request forwarded by a peer that this node can no longer serve (a stale route). */
    readonly hasLocalUpstream: (req: http.IncomingMessage) => boolean
    /** Upgraded connections (WebSockets, TCP connections) piped through this node, which a drain ends last. */
    readonly passThroughs: PassThrough.PassThroughs
    /**
     * Every TCP endpoint held by this node, by id, with the connections through its tunnels to it (and any other
     * endpoint whose connections are still open), for status and metrics.
     */
    readonly tcpEndpoints: Effect.Effect<ReadonlyArray<readonly [EndpointId, TcpTraffic.TcpCounters]>>
  }
>() {}

export interface ProxyOptions {
  /** How long to wait for response headers once the request body has been sent; also bounds route waits. */
  readonly gatewayTimeout: Duration.DurationInput
  /** How long a request body may pause between two reads; default 60 s. */
  readonly idleTimeout?: Duration.DurationInput
  /** TLS to peer nodes, whose proxy ports serve TLS: a CA to verify them, and a certificate to present. */
  readonly peerTls?: PeerTls | undefined
  /** One line per exchange (AccessLog.ts); on, to stderr, by default. */
  readonly accessLog?: AccessLog.AccessLogSettings | undefined
}

/** How a node connects to its peers' TLS proxy ports. */
export interface PeerTls {
  readonly ca: Buffer | undefined
  readonly cert: Buffer
  readonly key: Buffer
}

/** The proxy port's listener, once bound. */
export class ProxyServer extends Context.Tag("pico/ProxyServer")<
  ProxyServer,
  {
    readonly address: AddressInfo
    /** Stops taking new connections (the end of a drain); requests under way carry on. */
    readonly stopAccepting: Effect.Effect<void>
    /** Completes once the only connections left are pass-throughs (WebSockets, TCP). */
    readonly awaitNoHttpConnections: Effect.Effect<void>
  }
>() {}

const logFailure = (error: ProxyError | AuthError, endpointId: string | undefined) =>
  (error._tag === "ProxyError" &&
  (error.reason === "upstream unreachable" || error.reason === "endpoint timeout")
    ? Effect.logWarning("proxy request failed")
    : error._tag === "AuthError"
      ? Effect.logWarning("proxy request unauthorized")
      : Effect.logDebug("proxy request refused")
  ).pipe(
    Effect.annotateLogs({
      subsystem: "proxy",
      reason: error.reason,
      ...(endpointId === undefined ? {} : { "endpoint-id": endpointId }),
      ...(error.detail === undefined ? {} : { detail: error.detail }),
    }),
  )

/**
 * The Pico credential of a proxy request. `x-pico-authorization` (a bare token or "Bearer <token>") wins, so the
 * client's own Authorization header can reach the upstream untouched; a Pico token sent in Authorization is
 * removed before forwarding to an upstream.
 */
const proxyCredential = (
  req: http.IncomingMessage,
): { header: string | undefined; stripAuthorization: boolean } => {
  const pico = req.headers["x-pico-authorization"]
  if (typeof pico === "string" && pico !== "") {
    return { header: pico.includes(" ") ? pico : `Bearer ${pico}`, stripAuthorization: false }
  }
  return { header: req.headers.authorization, stripAuthorization: true }
}

/**
 * What an upgrade asks for: a WebSocket (to an HTTP endpoint) or a TCP connection (to a TCP endpoint); undefined
 * for any other protocol, which Pico does not pass: a pipe to it would be a tunnel nobody asked for.
 */
const upgradeKind = (req: http.IncomingMessage): EndpointKind | undefined => {
  const protocol = req.headers.upgrade?.toLowerCase()
  return protocol === "websocket" ? "http" : protocol === tcpUpgradeToken ? "tcp" : undefined
}

/** An endpoint serves one kind of client: the other kind is told what the endpoint is, and nothing reaches it. */
const wrongKind = (endpoint: EndpointKind): ProxyError =>
  new ProxyError({ reason: endpoint === "tcp" ? "endpoint is tcp" : "endpoint is http" })

/** Recorded for a request whose client went away before a response started (nginx's convention). */
const CLIENT_CLOSED_REQUEST = 499

/** How many other local upstreams (or pooled streams) a request without a spent body may try. */
const LOCAL_RETRIES = 2

const keepAuthorization = Effect.succeed(false)

/** Why the last attempt failed decides the answer when no route is left: stale routes only mean "not found". */
const failureFor = (last: AttemptOutcome | undefined): ProxyError =>
  last?._tag === "Retry" && last.reason !== "stale route"
    ? new ProxyError({ reason: "upstream unreachable", detail: last.detail })
    : new ProxyError({ reason: "endpoint not found" })

export const make = (options: ProxyOptions) =>
  Effect.gen(function* () {
    const registry = yield* Registry
    const inspector = yield* Inspector
    const accessLog = yield* AccessLog.make(
      options.accessLog ?? AccessLog.defaultAccessLogSettings,
      inspector.nodeId,
    )
    const shutdown = yield* Shutdown
    const guard = (yield* Auth).proxy
    // Optional, so a library user composing a node without a cluster key need not provide one.
    const keys = yield* Effect.serviceOption(ClusterKeys)
    const proof = PeerProof.make(Option.isSome(keys) ? keys.value.keyring : undefined)
    const metrics = yield* ProxyMetrics.make
    // Requests that need a fiber run in this set, interrupted when the handler's scope closes.
    const run = yield* FiberSet.makeRuntime<never>()
    const passThroughs = PassThrough.make()
    const tcpTraffic = TcpTraffic.make()
    const peerTls = options.peerTls
    const gatewayTimeout = Duration.toMillis(options.gatewayTimeout)
    const idleTimeout = Duration.toMillis(options.idleTimeout ?? defaultClientLimits.idleTimeout)
    // Keep-alive connections to peer nodes, shared by all forwarded requests.
    const peerAgent =
      peerTls === undefined
        ? new http.Agent({ keepAlive: true, scheduling: "lifo" })
        : new https.Agent({
            keepAlive: true,
            scheduling: "lifo",
            ...(peerTls.ca === undefined ? {} : { ca: peerTls.ca }),
            // Nodes present their own proxy certificate, so a proxy port that requires client certificates
            // (mTLS) takes its peers' forwarded requests.
            cert: peerTls.cert,
            key: peerTls.key,
          })
    yield* Effect.addFinalizer(() => Effect.sync(() => peerAgent.destroy()))

    /** Checks the Pico credential when the proxy port requires one; says whether Authorization carried it. */
    const authorize = (req: http.IncomingMessage, endpointId: string): Effect.Effect<boolean, AuthError> => {
      if (guard === undefined) return keepAuthorization
      const { header, stripAuthorization } = proxyCredential(req)
      return Effect.as(guard.authorize(header, endpointId), stripAuthorization)
    }

    const answerFailure = (error: ProxyError | AuthError, exchange: Exchange) => {
      // Node's parser refused the body and answered for us: the tunnel's failure that follows is not news.
      if (refusedStatus(exchange.res) !== undefined) return Effect.void
      exchange.failure = error.reason
      return logFailure(error, exchange.endpointId).pipe(
        Effect.zipRight(
          Effect.sync(() => {
            exchange.bytesOut += writeError(exchange.res, error)
          }),
        ),
      )
    }

    /** The request as sent to a peer node: the client described, Pico's credentials kept, the hop proved. */
    const peerAttempt = (exchange: Exchange, node: ClusterNode, headers: Array<string>): Attempt => {
      metrics.forwardedRemote(node.id)
      exchange.route = "forwarded"
      exchange.via = node.id
      return {
        agent: peerAgent,
        target: dialAddress(node.proxyAddr),
        tls: peerTls !== undefined,
        headers,
        expectContinue: !hasNoBody(exchange.req),
      }
    }

    const peerHeaders = (exchange: Exchange): Array<string> | undefined => {
      const { req } = exchange
      const headers = upstreamRequestHeaders(
        req,
        { keepUpgrade: exchange.upgrade !== undefined, credentials: "forward", fromPeer: false },
        exchange.requestId,
      )
      if (headers === undefined) return undefined
      headers.push(forwardedByHeader, inspector.nodeId)
      headers.push(PeerProof.forwardHeader, proof.sign(req.method ?? "", req.url ?? "", headers))
      if (!hasNoBody(req)) headers.push("Expect", "100-continue")
      return headers
    }

    /**
     * Sends the request to an upstream of this node, through its tunnel: a plain request on one of the session's
     * kept-alive HTTP connections, an upgrade on a stream of its own, which becomes the pass-through.
     */
    const sendLocal = (exchange: Exchange, upstream: Upstream, headers: ReadonlyArray<string>) => {
      metrics.forwardedLocal()
      exchange.route = "local"
      exchange.via = upstream.remoteAddr
      const { http } = upstream.session
      return exchange.upgrade === undefined
        ? sendThroughTunnelEffect(exchange, http, headers)
        : attempt(exchange, { createConnection: http.openStream, headers, expectContinue: false })
    }

    /**
     * Tries local upstreams, then (unless a peer sent the request: one hop at most) the nodes holding the
     * endpoint, skipping each that turns out stale or unreachable. With no route left and none of the body spent,
     * an entry node waits for the cluster to converge (an agent moving, a node draining), up to the route
     * deadline; a peer is told at once, since it does the waiting.
     */
    const retry = (
      exchange: Exchange,
      endpointId: EndpointId,
      localHeaders: ReadonlyArray<string>,
      fromPeer: boolean,
      first: AttemptOutcome | undefined,
    ) =>
      Effect.gen(function* () {
        const tried = new Set<string>()
        let remoteHeaders: Array<string> | undefined
        let localRetries = LOCAL_RETRIES
        let last = first
        for (;;) {
          // Its 499 is logged already. A request that waited for a route must not reach a service now: a DELETE
          // would run with no one to tell, and the client may well have sent it again elsewhere.
          if (clientGone(exchange)) return
          const upstream = localRetries > 0 ? registry.pickLocal(endpointId) : undefined
          const node =
            upstream === undefined && !fromPeer ? registry.pickRemote(endpointId, tried) : undefined
          if (upstream !== undefined) {
            if (upstream.kind !== exchange.kind) return yield* wrongKind(upstream.kind)
            localRetries--
            last = yield* sendLocal(exchange, upstream, localHeaders)
          } else if (node !== undefined) {
            const nodeKind = node.tcpEndpoints.has(endpointId) ? "tcp" : "http"
            if (nodeKind !== exchange.kind) return yield* wrongKind(nodeKind)
            remoteHeaders ??= peerHeaders(exchange)
            if (remoteHeaders === undefined) return yield* duplicateHost
            tried.add(node.id)
            last = yield* attempt(exchange, peerAttempt(exchange, node, remoteHeaders))
          } else {
            const remaining = exchange.routeDeadline - Date.now()
            const mayWait =
              !fromPeer &&
              !exchange.bodySpent &&
              remaining > 0 &&
              (last !== undefined || registry.routeExpected(endpointId))
            if (!mayWait) return yield* failureFor(last)
            const changed = yield* registry.routeChanged.pipe(Effect.timeoutOption(remaining))
            if (Option.isNone(changed)) return yield* failureFor(last)
            localRetries = LOCAL_RETRIES
            // A node tried before the change may hold the endpoint now: its agent came back, or it restarted
            // with its id (--cluster.node-id).
            tried.clear()
            continue
          }
          if (last._tag === "Done") return
        }
      })

    /** The headers for an upstream of this node; undefined for a request with two Host headers. */
    const localHeadersFor = (exchange: Exchange, fromPeer: boolean, stripAuthorization: boolean) => {
      const { req } = exchange
      const policy: HeaderPolicy = {
        keepUpgrade: exchange.upgrade !== undefined,
        credentials: stripAuthorization ? "strip authorization" : "strip",
        fromPeer: fromPeer && exchange.provenPeer,
      }
      return upstreamRequestHeaders(req, policy, exchange.requestId)
    }

    /** Anyone may ask a node not to forward (the header's presence); only a proven peer is trusted. */
    const askedNotToForward = (req: http.IncomingMessage) =>
      req.headers[PeerProof.forwardHeader] !== undefined

    const duplicateHost = new ProxyError({ reason: "duplicate host header" })

    const route = (exchange: Exchange, endpointId: EndpointId) => (stripAuthorization: boolean) =>
      Effect.suspend((): Effect.Effect<void, ProxyError> => {
        // Authorizing may have waited (for a JWKS fetch, say): a client gone meanwhile is owed nothing, and its
        // response, closed already, would never settle an attempt.
        if (clientGone(exchange)) return Effect.void
        const fromPeer = askedNotToForward(exchange.req)
        const localHeaders = localHeadersFor(exchange, fromPeer, stripAuthorization)
        if (localHeaders === undefined) return Effect.fail(duplicateHost)
        // The hot path: one local attempt, no generator, no waiting.
        const upstream = registry.pickLocal(endpointId)
        if (upstream === undefined) return retry(exchange, endpointId, localHeaders, fromPeer, undefined)
        if (upstream.kind !== exchange.kind) return Effect.fail(wrongKind(upstream.kind))
        return Effect.flatMap(sendLocal(exchange, upstream, localHeaders), (outcome) =>
          outcome._tag === "Done"
            ? Effect.void
            : retry(exchange, endpointId, localHeaders, fromPeer, outcome),
        )
      })

    /** What a switched upgrade carries; a TCP connection through this node's own tunnel counts for its endpoint. */
    const carried = (exchange: Exchange, local: boolean): PassThrough.Carried =>
      exchange.kind === "tcp"
        ? { _tag: "Tcp", counters: local ? tcpTraffic.of(exchange.endpointId as EndpointId) : undefined }
        : PassThrough.webSocket

    /**
     * What can be checked at once: the request id, the target, the endpoint id, the upgrade. Returns the endpoint
     * id, or why the request is refused.
     */
    const prepare = (exchange: Exchange): EndpointId | ProxyError => {
      const { req } = exchange
      exchange.requestId = requestIdOf(req)
      if (!normalizeTarget(req)) return new ProxyError({ reason: "invalid request target" })
      const codings = req.headers["transfer-encoding"]
      if (codings !== undefined && codings.toLowerCase() !== "chunked") return transferCodingError(codings)
      const kind = exchange.upgrade === undefined ? "http" : upgradeKind(req)
      const endpointId = endpointIdFromHeaders(req.headers, kind === "tcp" ? req.url : undefined)
      if (endpointId === undefined) return new ProxyError({ reason: "missing pico endpoint id" })
      if (!isValidEndpointId(endpointId)) return new ProxyError({ reason: "invalid endpoint id" })
      exchange.endpointId = endpointId
      if (req.headers[PeerProof.forwardHeader] !== undefined) {
        // Verified once here: the headers' policy reads it too (an HMAC is microseconds).
        exchange.provenPeer = proof.verify(req)
        if (exchange.provenPeer || proof.isPeer(req))
          exchange.fromNode = PeerProof.forwardingNode(req.headers[forwardedByHeader])
      }
      const replayOf = req.headers[replayHeader]
      if (typeof replayOf === "string" && replays.has(req)) exchange.replayOf = replayOf.slice(0, 200)
      // Captured where the client's request arrived: a peer's forwarded copy was captured by that peer.
      const capture = inspector.captureOf(endpointId)
      if (capture !== undefined && exchange.fromNode === undefined) exchange.capture = capture.begin(exchange)
      if (kind === undefined)
        return new ProxyError({
          reason: "unsupported upgrade",
          detail: `upgrade to ${req.headers.upgrade ?? ""}`,
        })
      exchange.kind = kind
      return endpointId
    }

    /** Authorizes (when the port requires it) and routes a prepared request, answering any failure. */
    const forward = (exchange: Exchange, endpointId: EndpointId): Effect.Effect<void> => {
      const forwarded =
        guard === undefined
          ? route(exchange, endpointId)(false)
          : Effect.flatMap(authorize(exchange.req, endpointId), route(exchange, endpointId))
      return Effect.catchAll(forwarded, (error) => answerFailure(error, exchange))
    }

    /**
     * The common case with no fiber at all: an open proxy port, a plain request, an upstream of this node. Says
     * whether it took the request; a retry or failure later goes on as a fiber, like everything else.
     */
    const sendLocalNow = (exchange: Exchange, endpointId: EndpointId): boolean => {
      if (guard !== undefined || exchange.upgrade !== undefined) return false
      const upstream = registry.pickLocal(endpointId)
      if (upstream === undefined || upstream.kind !== "http") return false
      const fromPeer = askedNotToForward(exchange.req)
      const headers = localHeadersFor(exchange, fromPeer, false)
      if (headers === undefined) return false
      metrics.forwardedLocal()
      exchange.route = "local"
      exchange.via = upstream.remoteAddr
      sendThroughTunnel(exchange, upstream.session.http, headers, (result) => {
        if (result._tag === "ProxyError") run(answerFailure(result, exchange))
        else if (result._tag === "Retry")
          run(
            Effect.catchAll(retry(exchange, endpointId, headers, fromPeer, result), (error) =>
              answerFailure(error, exchange),
            ),
          )
      })
      return true
    }

    /**
     * Per connection, the responses pipelined behind one still going out: they have no connection yet, so if it
     * dies first they never close, yet their exchanges are over (the client never got them). One listener per
     * connection, however many wait.
     */
    const waitingForTurn = new WeakMap<object, Set<() => void>>()
    const waitForTurn = (socket: Duplex, res: http.ServerResponse, orphaned: () => void) => {
      let waiting = waitingForTurn.get(socket)
      if (waiting === undefined) {
        const all = new Set<() => void>()
        waiting = all
        waitingForTurn.set(socket, all)
        socket.once("close", () => {
          for (const each of all) each()
        })
      }
      const mine = waiting
      mine.add(orphaned)
      res.once("socket", () => mine.delete(orphaned))
    }

    /** Requests the node's own replay sent (handleReplay): only theirs say what they replay. */
    const replays = new WeakSet<http.IncomingMessage>()

    const serve = (exchange: Exchange): void => {
      // No address: the client reset its connection before the node could read it, so it is gone, and the hop
      // its X-Forwarded-For would need is unknown. Dropped as any departed client's request (499); only the
      // node's own replays come without one.
      if (clientIp(exchange.req) === "" && !replays.has(exchange.req)) return void exchange.res.destroy()
      const endpointId = prepare(exchange)
      if (typeof endpointId !== "string") {
        if (closesConnection(endpointId)) closeAfterAnswer(exchange.req.socket)
        run(answerFailure(endpointId, exchange))
      } else if (!sendLocalNow(exchange, endpointId)) run(forward(exchange, endpointId))
    }

    /**
     * The client's status: what it was sent; what Node sent when its parser refused the request's body (the
     * exchange's failure is then that); or 499 when the client went away before a response started.
     */
    const clientStatus = (exchange: Exchange): number => {
      const { res } = exchange
      if (res.headersSent) return res.statusCode
      const refused = refusedStatus(res)
      if (refused === undefined) return CLIENT_CLOSED_REQUEST
      exchange.failure = "malformed request"
      return refused
    }

    /** The exchange is over for the client (or switched protocols): count, capture and log it. */
    const finished = (exchange: Exchange, logNow: boolean, status = clientStatus(exchange)) => {
      metrics.requestEnded(status, exchange.started)
      inspector.count(exchange, exchange.fromNode !== undefined)
      exchange.capture?.finish(exchange, status)
      if (logNow) accessLog?.(exchange, status)
    }

    const exchangeFor = (
      req: http.IncomingMessage,
      res: http.ServerResponse,
      upgrade: UpgradeTarget | undefined,
    ) =>
      newExchange(
        req,
        res,
        upgrade,
        { gatewayTimeout, idleTimeout },
        shutdown.isDraining,
        accessLog !== undefined,
      )

    // The hot path: no fiber (sendLocalNow), no per-request log annotations (added only on failure), no auth work
    // when the port is open, metrics updated without allocating, and a capture only when its endpoint's is on.
    const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      // Node parses what follows a body it could not frame as pipelined requests: never serve those.
      if (closesAfterAnswer(req.socket)) return
      // Draining: every response closes its connection, Pico's own errors too, so clients go elsewhere.
      if (shutdown.isDraining()) res.shouldKeepAlive = false
      const exchange = exchangeFor(req, res, undefined)
      const done = shutdown.begin()
      let over = false
      const ended = (status?: number) => {
        if (over) return
        over = true
        done()
        finished(exchange, true, status)
      }
      res.once("close", ended)
      if (res.socket === null)
        waitForTurn(req.socket, res, () => {
          ended(CLIENT_CLOSED_REQUEST)
          // Whatever still waits on this response (an attempt, a retry's fiber) learns it is over, as from a
          // client that left: it will never get a connection to close with.
          res.destroy()
          res.emit("close")
        })
      serve(exchange)
    }

    /**
     * An upgrade request is forwarded as a request; it becomes a pass-through pipe only if the upstream answers
     * 101. Until then it is answered like any request, on a response bound to the raw connection, which closes
     * after that answer: bytes the client sent behind it are never parsed as another request. A pass-through is
     * logged when it closes, with the bytes it carried.
     */
    const handleUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
      if (owesEarlierResponse(socket) || closesAfterAnswer(socket)) return void socket.destroy()
      const done = shutdown.begin()
      const res = new http.ServerResponse(req)
      res.shouldKeepAlive = false
      res.assignSocket(socket as Socket)
      socket.on("error", () => socket.destroy())
      let over = false
      const ended = (logNow: boolean, status?: number) => {
        if (over) return
        over = true
        done()
        finished(exchange, logNow, status)
      }
      res.once("finish", () => {
        res.detachSocket(socket as Socket)
        socket.end()
        ended(true)
      })
      res.once("close", () => ended(true))
      const switched = (upstream: Duplex, local: boolean) => {
        res.statusCode = 101
        passThroughs.open(socket, upstream, carried(exchange, local), (fromClient, toClient) => {
          exchange.bytesIn = fromClient
          exchange.bytesOut = toClient
          accessLog?.(exchange, 101)
        })
        ended(false, 101)
      }
      const exchange = exchangeFor(req, res, { socket, head, switched })
      serve(exchange)
    }

    /** A peer that asks first (Expect: 100-continue) learns at once, before sending a body, if the route is stale. */
    const hasLocalUpstream = (req: http.IncomingMessage): boolean => {
      const endpointId = endpointIdFromHeaders(req.headers)
      return (
        req.headers[PeerProof.forwardHeader] === undefined ||
        (endpointId !== undefined &&
          isValidEndpointId(endpointId) &&
          registry.pickLocal(endpointId) !== undefined)
      )
    }

    const tcpEndpoints = Effect.map(registry.localEndpoints, (local) => {
      const held = new Set<EndpointId>()
      for (const [endpointId, upstreams] of local) if (upstreams[0]?.kind === "tcp") held.add(endpointId)
      return tcpTraffic.snapshot(held)
    })

    const handleReplay = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      replays.add(req)
      handle(req, res)
    }

    return ProxyHandler.of({
      handle,
      handleReplay,
      handleUpgrade,
      hasLocalUpstream,
      passThroughs,
      tcpEndpoints,
    })
  })

export const layer = (
  options: ProxyOptions,
): Layer.Layer<ProxyHandler, ConfigError, Registry | Shutdown | Auth | Inspector> =>
  Layer.scoped(ProxyHandler, make(options))

/** Answers CONNECT (a forward proxy's tunnel request), which a reverse proxy does not offer. */
const refuseConnect = (_req: http.IncomingMessage, socket: Duplex) =>
  writeJsonToSocket(socket, 405, errorBody("CONNECT is not supported"))

/** Serves the proxy on `address` until the scope closes. */
export const layerServer = (address: HostPort, tls?: TlsFiles, limits: ClientLimits = defaultClientLimits) =>
  Layer.scoped(
    ProxyServer,
    Effect.gen(function* () {
      const proxy = yield* ProxyHandler
      const listener = yield* makeListener({
        name: "proxy",
        address,
        tls,
        limits,
        // A 256 KiB socket buffer lets a response body leave in a few large writes instead of one per 16 KiB:
        // on the proxy port, write syscalls are what limits throughput.
        server: { highWaterMark: 256 * 1024 },
      })
      const { server } = listener
      server.on("request", proxy.handle)
      // Answering Expect: 100-continue ourselves lets a peer's stale route be refused before its body is sent.
      server.on("checkContinue", (req, res) => {
        if (proxy.hasLocalUpstream(req)) res.writeContinue()
        proxy.handle(req, res)
      })
      server.on("upgrade", proxy.handleUpgrade)
      server.on("connect", refuseConnect)
      return ProxyServer.of({
        address: listener.address,
        stopAccepting: listener.stopAccepting,
        awaitNoHttpConnections: listener.guard.awaitNoHttpConnections,
      })
    }),
  )
