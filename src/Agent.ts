import { Effect, ExecutionStrategy, Exit, FiberSet, Layer, Schema, Scope } from "effect"
import { Backoff } from "./Agent/Backoff.js"
import { type ForwardTarget, makeForwarder } from "./Agent/Forwarder.js"
import { judgeConnectFailure } from "./Agent/ServerAnswer.js"
import { formatHostPort } from "./Domain/Address.js"
import { forwardMetrics } from "./Metrics/Agent.js"
import { type ClientTls, describeClose, Tunnel } from "./Tunnel.js"

export type { ServiceTls } from "./Agent/Forwarder.js"
export { type ProxySetting, proxyFromEnvironment } from "./Agent/ProxyEnvironment.js"

/**
 * The agent cannot go on, so retrying would only hammer the server: it refused the agent's credentials, or the
 * server URL leads to something other than a node's upstream port (a proxy or admin port, another web server).
 */
export class AgentError extends Schema.TaggedError<AgentError>()("AgentError", {
  reason: Schema.Literal("refused", "not an upstream port"),
  endpointId: Schema.String,
  message: Schema.String,
}) {}

/**
 * An endpoint id to register and where its requests go: a TCP address (TLS with `tls`, for an https:// service),
 * or an HTTP server in this process.
 */
export type AgentEndpointOptions = ForwardTarget & {
  readonly id: string
}

export interface AgentOptions {
  readonly endpoints: ReadonlyArray<AgentEndpointOptions>
  /** The server's upstream URL (http, https, ws or wss); a path in it is a prefix. */
  readonly serverUrl: string
  /** Headers sent with every connect, e.g. Authorization. */
  readonly headers?: Readonly<Record<string, string>>
  /** For https/wss server URLs: a CA to trust (a private one) and a client certificate to present (mTLS). */
  readonly tls?: ClientTls
  /**
   * An http:// forward proxy to reach the server through (CONNECT; TLS to the server stays end to end).
   * `proxyFromEnvironment` reads one from HTTPS_PROXY, HTTP_PROXY and NO_PROXY, as `pico agent` does.
   */
  readonly proxy?: URL
  /** Milliseconds to wait when connecting to a local service. */
  readonly forwardTimeout: number
  /** A session that lived this long (ms) counts as healthy, so the reconnect backoff starts over. */
  readonly healthyAfter: number
}

/** `http://host:8001/prefix` + `my-endpoint` → `ws://host:8001/prefix/pico/v1/listener/my-endpoint`. */
export const listenerUrl = (serverUrl: string, endpointId: string): string => {
  const url = new URL(serverUrl)
  url.protocol = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:"
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/pico/v1/listener/${encodeURIComponent(endpointId)}`
  return url.toString()
}

/**
 * Keeps one endpoint's tunnel up: connect, forward every stream the server opens, reconnect with backoff when the
 * session ends. On GoAway (the node is draining) a new session is connected first and the old one is left to
 * finish its in-flight streams, so a rolling restart of the cluster loses no request.
 */
const runEndpoint = (endpoint: AgentEndpointOptions, options: AgentOptions) =>
  Effect.gen(function* () {
    const tunnel = yield* Tunnel
    const endpointScope = yield* Effect.scope
    const draining = yield* FiberSet.make()
    const log = yield* FiberSet.makeRuntime<never>()
    const url = listenerUrl(options.serverUrl, endpoint.id)
    const backoff = new Backoff()
    let delay = 0

    const forward = makeForwarder(
      endpoint,
      options.forwardTimeout,
      (failure, detail) =>
        log(Effect.logWarning("forward failed").pipe(Effect.annotateLogs({ reason: failure, detail }))),
      forwardMetrics(endpoint.id),
    )

    if ("host" in endpoint && endpoint.tls?.insecureSkipVerify === true) {
      yield* Effect.logWarning(
        "insecure-skip-verify: not checking the service's TLS certificate; anyone on the path can impersonate it",
      ).pipe(Effect.annotateLogs("service", `https://${formatHostPort(endpoint)}`))
    }

    for (;;) {
      if (delay > 0) yield* Effect.sleep(delay)
      const sessionScope = yield* Scope.fork(endpointScope, ExecutionStrategy.sequential)
      const connected = yield* tunnel
        .connect(url, options.headers ?? {}, options.tls, options.proxy)
        .pipe(Scope.extend(sessionScope), Effect.either)
      if (connected._tag === "Left") {
        yield* Scope.close(sessionScope, Exit.void)
        const error = connected.left
        const verdict = judgeConnectFailure(error, options.serverUrl)
        if (verdict._tag === "Stop") {
          return yield* new AgentError({
            reason: verdict.reason,
            endpointId: endpoint.id,
            message: verdict.message,
          })
        }
        delay = backoff.next()
        yield* Effect.logWarning("failed to connect to server; retrying").pipe(
          Effect.annotateLogs({ error: error.message, "retry-in-ms": delay }),
        )
        continue
      }
      const session = connected.right
      yield* session.serveStreams(forward).pipe(Scope.extend(sessionScope))
      const connectedAt = Date.now()
      yield* Effect.logInfo("connected").pipe(Effect.annotateLogs("url", url))

      const outcome = yield* Effect.raceFirst(
        session.closed.pipe(Effect.map((reason) => ({ _tag: "Closed" as const, reason }))),
        session.peerGoingAway.pipe(Effect.as({ _tag: "GoAway" as const })),
      )
      if (outcome._tag === "GoAway") {
        yield* Effect.logInfo("server is draining; moving to a new session")
        yield* FiberSet.run(
          draining,
          session.closed.pipe(Effect.ensuring(Scope.close(sessionScope, Exit.void))),
        )
        backoff.reset()
        delay = 0
        continue
      }
      yield* Scope.close(sessionScope, Exit.void)
      yield* Effect.logWarning("disconnected").pipe(
        Effect.annotateLogs("reason", describeClose(outcome.reason)),
      )
      if (Date.now() - connectedAt >= options.healthyAfter) {
        backoff.reset()
        delay = 0
      } else delay = backoff.next()
    }
  }).pipe(Effect.scoped, Effect.annotateLogs({ subsystem: "agent", "endpoint-id": endpoint.id }))

/**
 * Runs every endpoint's tunnel until interrupted, or fails when retrying cannot help: the server refuses the
 * agent's credentials, or the server URL is not a node's upstream port.
 */
export const run = (options: AgentOptions): Effect.Effect<never, AgentError, Tunnel> =>
  Effect.forEach(options.endpoints, (endpoint) => runEndpoint(endpoint, options), {
    concurrency: "unbounded",
    discard: true,
  }).pipe(Effect.zipRight(Effect.never))

/** The agent as a layer, for embedding in another program: a fatal error is logged and ends the tunnels. */
export const layer = (options: AgentOptions): Layer.Layer<never, never, Tunnel> =>
  Layer.scopedDiscard(
    Effect.forkScoped(
      run(options).pipe(
        Effect.catchAll((error) =>
          Effect.logError(error.message).pipe(Effect.annotateLogs("subsystem", "agent")),
        ),
      ),
    ),
  )
