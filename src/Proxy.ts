import * as http from "node:http"
import * as https from "node:https"
import type { AddressInfo, Socket } from "node:net"
import type { Duplex } from "node:stream"
import { Context, Duration, Effect, FiberSet, Layer, Option } from "effect"
import { Auth, type AuthError } from "./Auth.js"
import { ClusterKeys } from "./ClusterKeys.js"
import { dialAddress, type HostPort } from "./Domain/Address.js"
import { type EndpointId, isValidEndpointId } from "./Domain/EndpointId.js"
import { type EndpointKind, tcpUpgradeToken } from "./Domain/EndpointKind.js"
import { errorBody, writeJsonToSocket } from "./internal/JsonResponse.js"
import { type ClientLimits, defaultClientLimits, makeListener } from "./internal/Listener.js"
import type { TlsFiles } from "./PicoConfig/KeyMaterial.js"
import { endpointIdFromHeaders } from "./Proxy/EndpointId.js"
import { ProxyError, writeError } from "./Proxy/Errors.js"
import {
  type Attempt,
  type AttemptOutcome,
  attempt,
  type Exchange,
  hasNoBody,
  type UpgradeTarget,
} from "./Proxy/Forward.js"
import { type HeaderPolicy, upstreamRequestHeaders } from "./Proxy/Headers.js"
import * as ProxyMetrics from "./Proxy/Metrics.js"
import * as PassThrough from "./Proxy/PassThrough.js"
import * as PeerProof from "./Proxy/PeerProof.js"
import { normalizeTarget } from "./Proxy/RequestTarget.js"
import * as TcpTraffic from "./Proxy/TcpTraffic.js"
import { type ClusterNode, Registry } from "./Registry.js"
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
    readonly handle: (req: http.IncomingMessage, res: http.ServerResponse) => Effect.Effect<void>
    readonly handleUpgrade: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => Effect.Effect<void>
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

/** An upgrade request's raw connection, as the server handed it over, and what to do once it has switched. */
interface RawUpgrade {
  readonly socket: Duplex
  /** Bytes the client sent past its request head. */
  readonly head: Buffer
  readonly switched: () => void
}

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
    const shutdown = yield* Shutdown
    const guard = (yield* Auth).proxy
    // Optional, so a library user composing a node without a cluster key need not provide one.
    const keys = yield* Effect.serviceOption(ClusterKeys)
    const proof = PeerProof.make(Option.isSome(keys) ? keys.value.keyring : undefined)
    const metrics = yield* ProxyMetrics.make
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

    const answerFailure = (
      error: ProxyError | AuthError,
      endpointId: string | undefined,
      res: http.ServerResponse,
    ) => logFailure(error, endpointId).pipe(Effect.zipRight(Effect.sync(() => writeError(res, error))))

    /** The request as sent to a peer node: the client described, Pico's credentials kept, the hop proved. */
    const peerAttempt = (exchange: Exchange, node: ClusterNode, headers: Array<string>): Attempt => {
      metrics.forwardedRemote(node.id)
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
      const headers = upstreamRequestHeaders(req, {
        keepUpgrade: exchange.upgrade !== undefined,
        credentials: "forward",
        fromPeer: false,
      })
      if (headers === undefined) return undefined
      headers.push(PeerProof.forwardHeader, proof.sign(req.method ?? "", req.url ?? "", headers))
      if (!hasNoBody(req)) headers.push("Expect", "100-continue")
      return headers
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
          const upstream = localRetries > 0 ? registry.pickLocal(endpointId) : undefined
          const node =
            upstream === undefined && !fromPeer ? registry.pickRemote(endpointId, tried) : undefined
          if (upstream !== undefined) {
            if (upstream.kind !== exchange.kind) return yield* wrongKind(upstream.kind)
            localRetries--
            metrics.forwardedLocal()
            last = yield* attempt(exchange, {
              agent: upstream.session.httpAgent,
              headers: localHeaders,
              expectContinue: false,
            })
          } else if (node !== undefined) {
            const nodeKind = node.tcpEndpoints.has(endpointId) ? "tcp" : "http"
            if (nodeKind !== exchange.kind) return yield* wrongKind(nodeKind)
            remoteHeaders ??= peerHeaders(exchange)
            if (remoteHeaders === undefined) return yield* new ProxyError({ reason: "duplicate host header" })
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
            continue
          }
          if (last._tag === "Done") return
        }
      })

    const route = (exchange: Exchange, endpointId: EndpointId) => (stripAuthorization: boolean) =>
      Effect.suspend((): Effect.Effect<void, ProxyError> => {
        const { req } = exchange
        // Anyone may ask a node not to forward (the header's presence); only a proven peer is trusted.
        const fromPeer = req.headers[PeerProof.forwardHeader] !== undefined
        const policy: HeaderPolicy = {
          keepUpgrade: exchange.upgrade !== undefined,
          credentials: stripAuthorization ? "strip authorization" : "strip",
          fromPeer: fromPeer && proof.verify(req),
        }
        const localHeaders = upstreamRequestHeaders(req, policy)
        if (localHeaders === undefined)
          return Effect.fail(new ProxyError({ reason: "duplicate host header" }))
        // The hot path: one local attempt, no generator, no waiting.
        const upstream = registry.pickLocal(endpointId)
        if (upstream === undefined) return retry(exchange, endpointId, localHeaders, fromPeer, undefined)
        if (upstream.kind !== exchange.kind) return Effect.fail(wrongKind(upstream.kind))
        metrics.forwardedLocal()
        return Effect.flatMap(
          attempt(exchange, {
            agent: upstream.session.httpAgent,
            headers: localHeaders,
            expectContinue: false,
          }),
          (outcome) =>
            outcome._tag === "Done"
              ? Effect.void
              : retry(exchange, endpointId, localHeaders, fromPeer, outcome),
        )
      })

    /** Once an upgrade's upstream has switched protocols: the connection becomes a pass-through. */
    const passThrough =
      (raw: RawUpgrade, kind: EndpointKind, endpointId: EndpointId): UpgradeTarget["switched"] =>
      (upstream, local) => {
        passThroughs.open(
          raw.socket,
          upstream,
          kind === "tcp"
            ? { _tag: "Tcp", counters: local ? tcpTraffic.of(endpointId) : undefined }
            : PassThrough.webSocket,
        )
        raw.switched()
      }

    const serve = (
      req: http.IncomingMessage,
      res: http.ServerResponse,
      raw: RawUpgrade | undefined,
    ): Effect.Effect<void> => {
      if (!normalizeTarget(req))
        return answerFailure(new ProxyError({ reason: "invalid request target" }), undefined, res)
      const kind = raw === undefined ? "http" : upgradeKind(req)
      const endpointId = endpointIdFromHeaders(req.headers, kind === "tcp" ? req.url : undefined)
      if (endpointId === undefined)
        return answerFailure(new ProxyError({ reason: "missing pico endpoint id" }), endpointId, res)
      if (!isValidEndpointId(endpointId))
        return answerFailure(new ProxyError({ reason: "invalid endpoint id" }), undefined, res)
      if (kind === undefined) {
        const detail = `upgrade to ${req.headers.upgrade ?? ""}`
        return answerFailure(new ProxyError({ reason: "unsupported upgrade", detail }), endpointId, res)
      }
      const exchange: Exchange = {
        kind,
        req,
        res,
        upgrade:
          raw === undefined
            ? undefined
            : { socket: raw.socket, head: raw.head, switched: passThrough(raw, kind, endpointId) },
        gatewayTimeout,
        routeDeadline: Date.now() + gatewayTimeout,
        idleTimeout,
        closeConnection: shutdown.isDraining,
        bodySpent: false,
      }
      const forwarded =
        guard === undefined
          ? route(exchange, endpointId)(false)
          : Effect.flatMap(authorize(req, endpointId), route(exchange, endpointId))
      return Effect.catchAll(forwarded, (error) => answerFailure(error, endpointId, res))
    }

    // The hot path: one fiber, no per-request log annotations (added only on failure), no auth work when the
    // port is open, metrics updated without allocating.
    const handle = (req: http.IncomingMessage, res: http.ServerResponse): Effect.Effect<void> => {
      const started = performance.now()
      const done = shutdown.begin()
      res.once("close", () => {
        done()
        metrics.requestEnded(res, started)
      })
      return serve(req, res, undefined)
    }

    /**
     * An upgrade request is forwarded as a request; it becomes a pass-through pipe only if the upstream answers
     * 101. Until then it is answered like any request, on a response bound to the raw connection, which closes
     * after that answer: bytes the client sent behind it are never parsed as another request.
     */
    const handleUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): Effect.Effect<void> => {
      const started = performance.now()
      const done = shutdown.begin()
      const res = new http.ServerResponse(req)
      res.shouldKeepAlive = false
      res.assignSocket(socket as Socket)
      socket.on("error", () => socket.destroy())
      const ended = () => {
        done()
        metrics.requestEnded(res, started)
      }
      res.once("finish", () => {
        res.detachSocket(socket as Socket)
        socket.end()
        ended()
      })
      res.once("close", ended)
      const switched = () => {
        res.statusCode = 101
        ended()
      }
      return serve(req, res, { socket, head, switched })
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

    return ProxyHandler.of({ handle, handleUpgrade, hasLocalUpstream, passThroughs, tcpEndpoints })
  })

export const layer = (options: ProxyOptions): Layer.Layer<ProxyHandler, never, Registry | Shutdown | Auth> =>
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
      const run = yield* FiberSet.makeRuntime<never>()
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
      server.on("request", (req, res) => run(proxy.handle(req, res)))
      // Answering Expect: 100-continue ourselves lets a peer's stale route be refused before its body is sent.
      server.on("checkContinue", (req, res) => {
        if (proxy.hasLocalUpstream(req)) res.writeContinue()
        run(proxy.handle(req, res))
      })
      server.on("upgrade", (req, socket: Duplex, head: Buffer) => run(proxy.handleUpgrade(req, socket, head)))
      server.on("connect", refuseConnect)
      return ProxyServer.of({ address: listener.address, stopAccepting: listener.stopAccepting })
    }),
  )
