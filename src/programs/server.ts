import { Duration, Effect, Layer } from "effect"
import * as Admin from "../Admin.js"
import * as Auth from "../Auth.js"
import * as ClusterKeys from "../ClusterKeys.js"
import { parseHostPort } from "../Domain/Address.js"
import { advertiseAddress } from "../Domain/Advertise.js"
import { joinOnStartup } from "../Gossip/Join.js"
import * as NetTransport from "../Gossip/NetTransport.js"
import * as Gossip from "../Gossip.js"
import type { ListenError } from "../internal/Listen.js"
import * as Metrics from "../Metrics.js"
import { formatGoDuration } from "../PicoConfig/Duration.js"
import { loadTokenKeys, tlsFiles } from "../PicoConfig/KeyMaterial.js"
import type { ConfigError, ServerConfigShape } from "../PicoConfig.js"
import * as Proxy from "../Proxy.js"
import * as Registry from "../Registry.js"
import * as Shutdown from "../Shutdown.js"
import * as Tunnel from "../Tunnel.js"
import * as UpstreamListener from "../UpstreamListener.js"

// Bind addresses were validated when the config was loaded.
const address = (text: string) => parseHostPort(text) as NonNullable<ReturnType<typeof parseHostPort>>

/**
 * Drains before anything closes: this layer is built last, so its finalizer runs first. /ready turns 503, the
 * listeners stop accepting, every upstream gets GoAway, and in-flight requests get up to the grace period.
 */
const drainOnShutdown = (gracePeriod: number) =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const shutdown = yield* Shutdown.Shutdown
      const registry = yield* Registry.Registry
      const gossip = yield* Gossip.Gossip
      yield* shutdown.onDrain(registry.goAwayAll)
      yield* Effect.addFinalizer(() =>
        Effect.gen(function* () {
          yield* Effect.logInfo("shutting down: draining").pipe(
            Effect.annotateLogs("grace_period", formatGoDuration(gracePeriod)),
          )
          const { abandoned } = yield* shutdown.drain(gracePeriod)
          if (abandoned > 0)
            yield* Effect.logWarning("grace period over; cutting requests").pipe(
              Effect.annotateLogs("in_flight", abandoned),
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
          yield* Effect.logInfo("shutdown complete")
        }).pipe(Effect.annotateLogs("subsystem", "server")),
      )
    }),
  )

/**
 * Tells the cluster how to reach this node, then joins it (retrying up to --cluster.join-timeout). With
 * --cluster.abort-if-join-fails a node that reached nobody fails to start, rather than serving as a split-off
 * cluster of one.
 */
const joinCluster = (config: ServerConfigShape) =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const gossip = yield* Gossip.Gossip
      const proxyServer = yield* Proxy.ProxyServer
      const adminServer = yield* Admin.AdminServer
      yield* gossip.setLocal("proxy_addr", advertiseAddress(config.proxy.advertiseAddr, proxyServer.address))
      yield* gossip.setLocal("admin_addr", advertiseAddress(config.admin.advertiseAddr, adminServer.address))
      const self = (yield* gossip.nodes).find((node) => node.id === gossip.nodeId)?.addr
      yield* Effect.logInfo("gossip listening").pipe(
        Effect.annotateLogs({ "node-id": gossip.nodeId, addr: self ?? "" }),
      )
      const outcome = yield* joinOnStartup(gossip.join, {
        entries: config.cluster.join,
        defaultPort: address(config.gossip.bindAddr).port,
        self: new Set(self === undefined ? [] : [self]),
        timeout: Duration.millis(config.cluster.joinTimeout),
      })
      switch (outcome._tag) {
        case "Joined":
          return yield* Effect.logInfo("joined cluster").pipe(
            Effect.annotateLogs({ "node-id": gossip.nodeId, "joined-node-ids": outcome.nodeIds.join(",") }),
          )
        case "Alone":
          return yield* Effect.logInfo("no other node to join yet")
        case "Failed":
          if (config.cluster.abortIfJoinFails) {
            return yield* new Gossip.GossipError({
              reason: "join failed",
              message: `join failed: ${outcome.reason}`,
            })
          }
          return yield* Effect.logWarning("join failed; running alone until a peer reaches this node").pipe(
            Effect.annotateLogs("reason", outcome.reason),
          )
      }
    }).pipe(Effect.annotateLogs("subsystem", "cluster")),
  )

/** Gossip over UDP and TCP on --gossip.bind-addr. */
export const gossipLayer = (config: ServerConfigShape): Layer.Layer<Gossip.Gossip, ListenError> =>
  Gossip.layer(
    NetTransport.make(address(config.gossip.bindAddr), (bound) =>
      advertiseAddress(config.gossip.advertiseAddr, bound),
    ),
    {
      nodeId:
        config.cluster.nodeId === ""
          ? Gossip.generateNodeId(config.cluster.nodeIdPrefix)
          : config.cluster.nodeId,
      interval: Duration.millis(config.gossip.interval),
      maxPacketSize: config.gossip.maxPacketSize,
    },
  )

/** Key material and TLS files, read and checked before anything listens. */
const loadSecurity = (config: ServerConfigShape) =>
  Effect.all({
    auth: Effect.all({
      upstream: loadTokenKeys(config.auth, "auth"),
      proxy: loadTokenKeys(config.proxy.auth, "proxy.auth"),
      admin: loadTokenKeys(config.admin.auth, "admin.auth"),
    }),
    tls: Effect.all({
      proxy: tlsFiles(config.proxy.tls, "proxy.tls"),
      upstream: tlsFiles(config.upstream.tls, "upstream.tls"),
      admin: tlsFiles(config.admin.tls, "admin.tls"),
    }),
  })

/**
 * A whole node: the proxy, upstream and admin listeners over the shared registry, tunnel and auth services, in
 * the cluster that `gossip` connects it to (UDP/TCP by default; tests pass an in-memory one). Its metrics are its
 * own even when other nodes share the process. Fails with ConfigError when key material or certificates are
 * unusable.
 */
export const serverLayer = (
  config: ServerConfigShape,
  gossip: Layer.Layer<Gossip.Gossip, ListenError> = gossipLayer(config),
): Layer.Layer<ServerServices, ConfigError | ListenError | Gossip.GossipError> =>
  Layer.unwrapEffect(
    loadSecurity(config).pipe(
      Effect.map(({ auth, tls }) => {
        const core = Layer.mergeAll(
          Registry.layer,
          Shutdown.layer,
          Tunnel.layer({
            interval: config.upstream.heartbeatInterval,
            timeout: config.upstream.heartbeatTimeout,
          }),
          Auth.layer(auth),
          ClusterKeys.layer(undefined),
        ).pipe(Layer.provideMerge(gossip))
        const listeners = Layer.mergeAll(
          Proxy.layerServer(address(config.proxy.bindAddr), tls.proxy),
          UpstreamListener.layerServer(address(config.upstream.bindAddr), tls.upstream),
          Admin.layerServer(address(config.admin.bindAddr), tls.admin),
        ).pipe(Layer.provide(Proxy.layer({ gatewayTimeout: config.proxy.gatewayTimeout })))
        return drainOnShutdown(config.server.gracefulShutdownTimeout).pipe(
          Layer.provideMerge(joinCluster(config)),
          Layer.provideMerge(listeners),
          Layer.provideMerge(core),
        )
      }),
    ),
  ).pipe(Metrics.isolate)

/** What a running node provides, for tests and embedders that want its bound addresses or registry. */
export type ServerServices =
  | Proxy.ProxyServer
  | UpstreamListener.UpstreamServer
  | Admin.AdminServer
  | Registry.Registry
  | Shutdown.Shutdown
  | Tunnel.Tunnel
  | Auth.Auth
  | ClusterKeys.ClusterKeys
  | Gossip.Gossip
