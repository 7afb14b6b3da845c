import { Clock, Duration, Effect, Fiber, Layer, Option } from "effect"
import { Gossip } from "./Gossip.js"
import { formatGoDuration } from "./PicoConfig/Duration.js"
import { ProxyHandler, ProxyServer } from "./Proxy.js"
import { Registry } from "./Registry.js"
import { Shutdown } from "./Shutdown.js"
import { UpstreamServer } from "./UpstreamListener.js"

export interface DrainOptions {
  /** How long the whole drain may take (--server.graceful-shutdown-timeout). */
  readonly gracePeriod: Duration.DurationInput
  /** Time for a withdrawn route to reach the other nodes (a few gossip intervals). */
  readonly propagation: Duration.DurationInput
}

/**
 * Make-before-break across the cluster: a node that is going away keeps serving until the cluster no longer
 * needs it, so a rolling restart loses no request. In order, within the grace period:
 *
 * 1. readiness turns 503, responses ask clients to reconnect elsewhere, the upstream port stops taking tunnels,
 *    and every agent gets GoAway: it connects a new session (through the balancer, to another node) and leaves
 *    the old one open;
 * 2. once every endpoint held here is also held by another active node, this node withdraws its routes from
 *    gossip and gives them time to spread, serving locally all the while whatever still arrives;
 * 3. the proxy port stops accepting, and the requests under way finish, as do the ones on connections it
 *    accepted but had not read yet;
 * 4. the node leaves the cluster;
 * 5. pass-through WebSockets stay open to the end of the grace period and are then closed with 1001.
 *
 * A node with no peer skips straight to 3: there is nowhere else to send anything.
 */
export const drain = (options: DrainOptions) =>
  Effect.gen(function* () {
    const shutdown = yield* Shutdown
    const registry = yield* Registry
    const gossip = yield* Gossip
    const proxy = yield* ProxyHandler
    const proxyServer = yield* ProxyServer
    const upstreamServer = yield* UpstreamServer
    const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(options.gracePeriod)
    const untilDeadline = <A>(effect: Effect.Effect<A>) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        effect.pipe(Effect.timeoutOption(Duration.millis(Math.max(0, deadline - now)))),
      )
    const hasPeers = Effect.map(registry.clusterNodes, (nodes) =>
      nodes.some((node) => node.status === "active"),
    )

    yield* Effect.logInfo("shutting down: draining").pipe(
      Effect.annotateLogs("grace-period", formatGoDuration(Duration.toMillis(options.gracePeriod))),
    )
    yield* shutdown.startDraining
    yield* upstreamServer.stopAccepting
    yield* registry.goAwayAll

    if (yield* hasPeers) {
      /** Endpoints held here that no other active node holds yet. */
      const notYetMoved = Effect.map(registry.localEndpoints, (local) =>
        [...local.keys()].filter((endpointId) => registry.pickRemote(endpointId, new Set()) === undefined),
      )
      const moved = yield* untilDeadline(
        Effect.gen(function* () {
          while ((yield* notYetMoved).length > 0) yield* registry.routeChanged
        }),
      )
      if (Option.isNone(moved))
        yield* Effect.logWarning("endpoints not picked up by another node in time").pipe(
          Effect.annotateLogs("endpoints", (yield* notYetMoved).join(",")),
        )
      yield* registry.withdraw
      yield* untilDeadline(Effect.sleep(options.propagation))
    }

    yield* proxyServer.stopAccepting
    // A connection accepted just before has its request answered too. Responses close their connections now, and
    // a kept-alive one whose response began before the drain is closed once that ends.
    const finished = yield* untilDeadline(
      Effect.zipRight(proxyServer.awaitNoHttpConnections, shutdown.awaitIdle),
    )
    if (Option.isNone(finished))
      yield* Effect.logWarning("grace period over; cutting requests").pipe(
        Effect.annotateLogs("in-flight", shutdown.inFlight()),
      )

    // Peers learn at once that this node left, instead of suspecting it for seconds and then expiring it.
    yield* gossip.leave.pipe(
      Effect.timeout("5 seconds"),
      Effect.tap(() => Effect.logInfo("left cluster")),
      Effect.catchAll((error) =>
        Effect.logWarning("failed to leave the cluster gracefully").pipe(
          Effect.annotateLogs("error", String(error)),
        ),
      ),
    )

    if (proxy.passThroughs.count() > 0) {
      yield* Effect.logInfo("waiting for pass-through connections").pipe(
        Effect.annotateLogs("open", proxy.passThroughs.count()),
      )
      yield* untilDeadline(proxy.passThroughs.awaitNone)
      yield* proxy.passThroughs.closeAll
    }
    yield* Effect.logInfo("shutdown complete")
  }).pipe(Effect.annotateLogs("subsystem", "server"))

/**
 * Runs the drain when the node's scope closes; built last, so its finalizer runs before any other. A finalizer
 * runs uninterruptibly, where a timeout waits for what it times to finish anyway, and often on a fiber already
 * interrupted (by SIGTERM), where an interruptible region would end at once. So the drain runs on a fiber of its
 * own, interruptibly, and the finalizer waits for it.
 */
export const layer = (options: DrainOptions) =>
  Layer.scopedDiscard(
    Effect.flatMap(
      Effect.context<Shutdown | Registry | Gossip | ProxyHandler | ProxyServer | UpstreamServer>(),
      (context) =>
        Effect.addFinalizer(() =>
          drain(options).pipe(
            Effect.provide(context),
            Effect.interruptible,
            Effect.forkDaemon,
            Effect.flatMap(Fiber.join),
          ),
        ),
    ),
  )
