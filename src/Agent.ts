import {
  Clock,
  Duration,
  Effect,
  ExecutionStrategy,
  Exit,
  FiberSet,
  Layer,
  Schedule,
  Schema,
  Scope,
} from "effect"
import { type ForwardTarget, makeForwarder } from "./Agent/Forwarder.js"
import { judgeConnectFailure } from "./Agent/ServerAnswer.js"
import { formatHostPort } from "./Domain/Address.js"
import type { EndpointId } from "./Domain/EndpointId.js"
import { type EndpointKind, kindParameter } from "./Domain/EndpointKind.js"
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
  /** The server's answer that made retrying pointless. */
  cause: Schema.optional(Schema.Defect),
}) {}

/**
 * An endpoint id to register and where its requests go: an HTTP service's TCP address (TLS with `tls`, for an
 * https:// service), an HTTP server in this process, or, with `kind: "tcp"`, any TCP service (a TCP endpoint).
 */
export type AgentEndpointOptions = ForwardTarget & {
  readonly id: EndpointId
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
  /** How long to wait when connecting to a local service. */
  readonly forwardTimeout: Duration.DurationInput
  /** A session that lived this long counts as healthy, so the reconnect backoff starts over. */
  readonly healthyAfter: Duration.DurationInput
}

/**
 * `http://host:8001/prefix` + `my-endpoint` → `ws://host:8001/prefix/pico/v1/listener/my-endpoint`, with
 * `?kind=tcp` for a TCP endpoint (an HTTP endpoint says nothing, as agents did before kinds).
 */
export const listenerUrl = (serverUrl: string, endpointId: string, kind: EndpointKind = "http"): string => {
  const url = new URL(serverUrl)
  url.protocol = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:"
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/pico/v1/listener/${encodeURIComponent(endpointId)}`
  if (kind !== "http") url.searchParams.set(kindParameter, kind)
  return url.toString()
}

/** No session could be opened, or one ended before it counted as healthy: worth retrying, after a delay. */
class Unsettled extends Schema.TaggedError<Unsettled>()("Unsettled", {
  reason: Schema.Literal("connect failed", "disconnected"),
  message: Schema.String,
}) {}

const retryingLog: Record<Unsettled["reason"], string> = {
  "connect failed": "failed to connect to server; retrying",
  disconnected: "disconnected; retrying",
}

/**
 * Reconnect delays: 1 s doubling to a 30 s cap, each with ±20% jitter (Schedule.jittered) so a fleet of agents cut
 * off by the same node restart does not reconnect in lockstep.
 */
const reconnectDelays = Schedule.exponential("1 second").pipe(
  Schedule.union(Schedule.spaced("30 seconds")),
  Schedule.jittered,
)

/**
 * Keeps one endpoint's tunnel up: connect, forward every stream the server opens, reconnect when the session
 * ends. A session that lived long enough (healthyAfter) or was moved by its node is followed at once by the next,
 * with the backoff starting over; failed connects and short-lived sessions retry on `reconnectDelays`. On GoAway
 * (the node is draining) a new session is connected first and the old one is left to finish its in-flight
 * streams, so a rolling restart of the cluster loses no request.
 */
const runEndpoint = (endpoint: AgentEndpointOptions, options: AgentOptions) =>
  Effect.gen(function* () {
    const tunnel = yield* Tunnel
    const endpointScope = yield* Effect.scope
    const draining = yield* FiberSet.make()
    const log = yield* FiberSet.makeRuntime<never>()
    const url = listenerUrl(options.serverUrl, endpoint.id, endpoint.kind ?? "http")
    const healthyAfter = Duration.toMillis(options.healthyAfter)

    const forward = makeForwarder(
      endpoint,
      Duration.toMillis(options.forwardTimeout),
      (failure, detail) =>
        log(Effect.logWarning("forward failed").pipe(Effect.annotateLogs({ reason: failure, detail }))),
      forwardMetrics(endpoint.id),
    )

    if ("tls" in endpoint && endpoint.tls?.insecureSkipVerify === true) {
      yield* Effect.logWarning(
        "insecure-skip-verify: not checking the service's TLS certificate; anyone on the path can impersonate it",
      ).pipe(Effect.annotateLogs("service", `https://${formatHostPort(endpoint)}`))
    }

    /** One session, from connect to its end; fails when a retry should wait (see Unsettled) or cannot help. */
    const session = Effect.gen(function* () {
      const sessionScope = yield* Scope.fork(endpointScope, ExecutionStrategy.sequential)
      const connected = yield* tunnel
        .connect(url, options.headers ?? {}, options.tls, options.proxy)
        .pipe(Scope.extend(sessionScope), Effect.either)
      if (connected._tag === "Left") {
        yield* Scope.close(sessionScope, Exit.void)
        const verdict = judgeConnectFailure(connected.left, options.serverUrl)
        if (verdict._tag === "Stop")
          return yield* new AgentError({
            reason: verdict.reason,
            endpointId: endpoint.id,
            message: verdict.message,
            cause: connected.left,
          })
        return yield* new Unsettled({ reason: "connect failed", message: connected.left.message })
      }
      const session = connected.right
      yield* session.serveStreams(forward).pipe(Scope.extend(sessionScope))
      const connectedAt = yield* Clock.currentTimeMillis
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
        return
      }
      yield* Scope.close(sessionScope, Exit.void)
      const reason = describeClose(outcome.reason)
      if ((yield* Clock.currentTimeMillis) - connectedAt < healthyAfter)
        return yield* new Unsettled({ reason: "disconnected", message: reason })
      yield* Effect.logWarning("disconnected").pipe(Effect.annotateLogs("reason", reason))
    })

    return yield* session.pipe(
      Effect.tapErrorTag("Unsettled", (error) =>
        Effect.logWarning(retryingLog[error.reason]).pipe(Effect.annotateLogs("error", error.message)),
      ),
      Effect.retry({ schedule: reconnectDelays, while: (error) => error._tag === "Unsettled" }),
      Effect.forever,
      // reconnectDelays never ends, so only an AgentError (retrying cannot help) gets past the retry.
      Effect.catchTag("Unsettled", Effect.die),
    )
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
