import * as http from "node:http"
import type { AddressInfo } from "node:net"
import type { Duplex } from "node:stream"
import { Context, Effect, FiberSet, Layer } from "effect"
import { Auth, type AuthError } from "./Auth.js"
import { dialAddress, type HostPort } from "./Domain/Address.js"
import { makeHttpServer } from "./internal/HttpServer.js"
import { formatAddressInfo, listen, stopAccepting } from "./internal/Listen.js"
import type { TlsFiles } from "./PicoConfig/KeyMaterial.js"
import { endpointIdFromHeaders } from "./Proxy/EndpointId.js"
import { ProxyError, writeError, writeErrorToSocket } from "./Proxy/Errors.js"
import { type Attempt, exchange, forwardUpgrade, hasNoBody } from "./Proxy/Forward.js"
import { upstreamRequestHeaders } from "./Proxy/Headers.js"
import * as ProxyMetrics from "./Proxy/Metrics.js"
import { type ClusterNode, Registry, type Upstream } from "./Registry.js"
import { Shutdown } from "./Shutdown.js"
import type { TunnelStream } from "./Tunnel.js"

export { ProxyError, type ProxyFailure } from "./Proxy/Errors.js"

/**
 * Routes proxy-client requests to upstreams: resolves the endpoint id, picks an upstream and streams the exchange
 * through its tunnel. Failures are answered with a JSON `{"error": ...}` body, never thrown.
 */
export class Proxy extends Context.Tag("pico/Proxy")<
  Proxy,
  {
    readonly handle: (req: http.IncomingMessage, res: http.ServerResponse) => Effect.Effect<void>
    readonly handleUpgrade: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => Effect.Effect<void>
    /** False for a request forwarded by a peer that this node can no longer serve (a stale route). */
    readonly hasLocalUpstream: (req: http.IncomingMessage) => boolean
  }
>() {}

export interface ProxyOptions {
  /** Milliseconds to wait for an upstream's response headers before answering 504. */
  readonly gatewayTimeout: number
}

/** The proxy port's listener, once bound. */
export class ProxyServer extends Context.Tag("pico/ProxyServer")<
  ProxyServer,
  { readonly address: AddressInfo }
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

/** Marks a request one node forwards to another, which must not forward it again (one hop at most). */
const forwardedHeader = "x-pico-forward"

const isFromPeer = (req: http.IncomingMessage): boolean => req.headers[forwardedHeader] === "true"

/** How many other local upstreams (or pooled streams) a request without a spent body may try. */
const LOCAL_RETRIES = 2

export const make = (options: ProxyOptions) =>
  Effect.gen(function* () {
    const registry = yield* Registry
    const shutdown = yield* Shutdown
    const guard = (yield* Auth).proxy
    const metrics = yield* ProxyMetrics.make
    const forwardOptions = { gatewayTimeout: options.gatewayTimeout, closeConnection: shutdown.isDraining }
    // Keep-alive connections to peer nodes, shared by all forwarded requests.
    const peerAgent = new http.Agent({ keepAlive: true, scheduling: "lifo" })
    yield* Effect.addFinalizer(() => Effect.sync(() => peerAgent.destroy()))

    /** Checks the Pico credential when the proxy port requires one; says whether Authorization carried it. */
    const authorize = (req: http.IncomingMessage, endpointId: string): Effect.Effect<boolean, AuthError> => {
      if (guard === undefined) return keepAuthorization
      const { header, stripAuthorization } = proxyCredential(req)
      return Effect.as(guard.authorize(header, endpointId), stripAuthorization)
    }

    /**
     * Opens a stream to a local upstream (a local forward), skipping any whose session closed since it was picked.
     */
    const openLocalStream = (endpointId: string): Effect.Effect<TunnelStream, ProxyError> =>
      Effect.suspend(() => {
        for (;;) {
          const upstream = registry.pickLocal(endpointId)
          if (upstream === undefined) return Effect.fail(new ProxyError({ reason: "endpoint not found" }))
          try {
            const stream = upstream.tunnel.openStream()
            metrics.forwardedLocal()
            return Effect.succeed(stream)
          } catch {
            // Closed between pick and open: pickLocal will not offer it again.
          }
        }
      })

    const answerFailure = (
      error: ProxyError | AuthError,
      endpointId: string | undefined,
      res: http.ServerResponse,
    ) => logFailure(error, endpointId).pipe(Effect.zipRight(Effect.sync(() => writeError(res, error))))

    /** To a local upstream, through its tunnel; a retry goes to the next local upstream. */
    const forwardLocal = (
      req: http.IncomingMessage,
      res: http.ServerResponse,
      endpointId: string,
      upstream: Upstream,
      headers: ReadonlyArray<string>,
    ) => {
      let retries = LOCAL_RETRIES
      const attempt = (target: Upstream): Attempt => ({
        agent: target.httpAgent,
        headers,
        expectContinue: false,
      })
      return exchange(req, res, forwardOptions, attempt(upstream), () => {
        const next = retries-- > 0 ? registry.pickLocal(endpointId) : undefined
        return next === undefined ? undefined : attempt(next)
      })
    }

    /**
     * To a peer node that holds the endpoint, chosen by upstream count. A peer that cannot be reached or no
     * longer has the endpoint (a stale route) is skipped for the next one: the request never reached an upstream.
     */
    const forwardRemote = (req: http.IncomingMessage, res: http.ServerResponse, endpointId: string) => {
      const tried = new Set<string>()
      const headers = upstreamRequestHeaders(req, {
        keepUpgrade: false,
        credentials: "forward",
        fromPeer: false,
      })
      headers.push(forwardedHeader, "true")
      const expectContinue = !hasNoBody(req)
      if (expectContinue) headers.push("Expect", "100-continue")
      const attemptOn = (node: ClusterNode | undefined): Attempt | undefined => {
        if (node === undefined) return undefined
        tried.add(node.id)
        metrics.forwardedRemote(node.id)
        return { agent: peerAgent, target: dialAddress(node.proxyAddr), headers, expectContinue }
      }
      const first = attemptOn(registry.pickRemote(endpointId, tried))
      if (first === undefined) return Effect.fail(new ProxyError({ reason: "endpoint not found" }))
      return exchange(req, res, forwardOptions, first, () =>
        attemptOn(registry.pickRemote(endpointId, tried)),
      )
    }

    const route =
      (req: http.IncomingMessage, res: http.ServerResponse, endpointId: string) =>
      (stripAuthorization: boolean): Effect.Effect<void, ProxyError> => {
        const fromPeer = isFromPeer(req)
        const upstream = registry.pickLocal(endpointId)
        if (upstream !== undefined) {
          const credentials = stripAuthorization ? "strip authorization" : "strip"
          const headers = upstreamRequestHeaders(req, { keepUpgrade: false, credentials, fromPeer })
          metrics.forwardedLocal()
          return forwardLocal(req, res, endpointId, upstream, headers)
        }
        // A forwarded request is never forwarded again: one hop, no loops.
        if (fromPeer) return Effect.fail(new ProxyError({ reason: "endpoint not found" }))
        return forwardRemote(req, res, endpointId)
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
      const endpointId = endpointIdFromHeaders(req.headers)
      if (endpointId === undefined) {
        return answerFailure(new ProxyError({ reason: "missing pico endpoint id" }), endpointId, res)
      }
      const forwarded =
        guard === undefined
          ? route(req, res, endpointId)(false)
          : Effect.flatMap(authorize(req, endpointId), route(req, res, endpointId))
      return Effect.catchAll(forwarded, (error) => answerFailure(error, endpointId, res))
    }

    /** A peer that asks first (Expect: 100-continue) learns at once, before sending a body, if the route is stale. */
    const hasLocalUpstream = (req: http.IncomingMessage): boolean => {
      const endpointId = endpointIdFromHeaders(req.headers)
      return !isFromPeer(req) || (endpointId !== undefined && registry.pickLocal(endpointId) !== undefined)
    }

    const handleUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      const endpointId = endpointIdFromHeaders(req.headers)
      const forwarded: Effect.Effect<void, ProxyError | AuthError> =
        endpointId === undefined
          ? Effect.fail(new ProxyError({ reason: "missing pico endpoint id" }))
          : authorize(req, endpointId).pipe(
              Effect.flatMap((stripAuthorization) =>
                openLocalStream(endpointId).pipe(
                  Effect.map((stream) =>
                    forwardUpgrade(stream, req, socket, head, {
                      keepUpgrade: true,
                      credentials: stripAuthorization ? "strip authorization" : "strip",
                      fromPeer: isFromPeer(req),
                    }),
                  ),
                ),
              ),
            )
      return forwarded.pipe(
        Effect.catchAll((error) =>
          logFailure(error, endpointId).pipe(
            Effect.zipRight(Effect.sync(() => writeErrorToSocket(socket, error))),
          ),
        ),
      )
    }

    return Proxy.of({ handle, handleUpgrade, hasLocalUpstream })
  })

const keepAuthorization = Effect.succeed(false)

export const layer = (options: ProxyOptions): Layer.Layer<Proxy, never, Registry | Shutdown | Auth> =>
  Layer.scoped(Proxy, make(options))

/** Serves the proxy on `address` until the scope closes; stops accepting connections when the node drains. */
export const layerServer = (address: HostPort, tls?: TlsFiles) =>
  Layer.scoped(
    ProxyServer,
    Effect.gen(function* () {
      const proxy = yield* Proxy
      const shutdown = yield* Shutdown
      const run = yield* FiberSet.makeRuntime<never>()
      // No request timeout: a proxied download may legitimately stream for hours.
      // A 256 KiB socket buffer lets a response body leave in a few large writes instead of one per 16 KiB:
      // on the proxy port, write syscalls are what limits throughput.
      const server = yield* makeHttpServer(tls, { requestTimeout: 0, highWaterMark: 256 * 1024 }, "proxy")
      server.on("request", (req, res) => run(proxy.handle(req, res)))
      // Answering Expect: 100-continue ourselves lets a peer's stale route be refused before its body is sent.
      server.on("checkContinue", (req, res) => {
        if (proxy.hasLocalUpstream(req)) res.writeContinue()
        run(proxy.handle(req, res))
      })
      server.on("upgrade", (req, socket: Duplex, head: Buffer) => run(proxy.handleUpgrade(req, socket, head)))
      server.on("clientError", (_error, socket: Duplex) => socket.destroy())
      const bound = yield* listen(server, address, "proxy")
      yield* shutdown.onDrain(stopAccepting(server))
      yield* Effect.logInfo("proxy listening").pipe(
        Effect.annotateLogs({ subsystem: "proxy", addr: formatAddressInfo(bound) }),
      )
      return ProxyServer.of({ address: bound })
    }),
  )
