import { Duration, Effect, Layer } from "effect"
import * as Admin from "../Admin.js"
import * as Auth from "../Auth.js"
import * as ClusterKeys from "../ClusterKeys.js"
import { advertiseAddress } from "../Domain/Advertise.js"
import { GossipKeys } from "../Domain/GossipKeys.js"
import * as Drain from "../Drain.js"
import { joinOnStartup } from "../Gossip/Join.js"
import * as NetTransport from "../Gossip/NetTransport.js"
import * as Gossip from "../Gossip.js"
import * as Inspector from "../Inspector.js"
import type { ListenError } from "../internal/Listen.js"
import * as Metrics from "../Metrics.js"
import {
  loadClusterKeys,
  loadTokenKeys,
  readCaFile,
  readNamedPem,
  readTlsFiles,
  type TlsFiles,
  tlsFiles,
} from "../PicoConfig/KeyMaterial.js"
import type { TlsSettings } from "../PicoConfig/Security.js"
import type { ConfigError, ServerConfigShape } from "../PicoConfig.js"
import * as Proxy from "../Proxy.js"
import * as Registry from "../Registry.js"
import * as Shutdown from "../Shutdown.js"
import * as Tunnel from "../Tunnel.js"
import * as UpstreamListener from "../UpstreamListener.js"

/**
 * Tells the cluster how to reach this node, then joins it (retrying up to --cluster.join-timeout). With
 * --cluster.abort-if-join-fails a node that reached nobody fails to start, rather than serving as a split-off
 * cluster of one.
 */
const joinCluster = (config: ServerConfigShape) =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const gossip = yield* Gossip.Gossip
      const registry = yield* Registry.Registry
      const proxyServer = yield* Proxy.ProxyServer
      const adminServer = yield* Admin.AdminServer
      yield* gossip.setLocal(
        GossipKeys.proxyAddr,
        advertiseAddress(config.proxy.advertiseAddr, proxyServer.address),
      )
      yield* gossip.setLocal(
        GossipKeys.adminAddr,
        advertiseAddress(config.admin.advertiseAddr, adminServer.address),
      )
      const self = (yield* gossip.nodes).find((node) => node.id === gossip.nodeId)?.addr
      yield* Effect.logInfo("gossip started").pipe(
        Effect.annotateLogs({ "node-id": gossip.nodeId, "advertise-addr": self ?? "", keys: gossip.keys }),
      )
      if (gossip.keys === 0)
        yield* Effect.logWarning(
          "gossip is unauthenticated: anyone who can reach the gossip port can change this cluster's routes; " +
            "set --gossip.secret-key on every node (docs/security.md)",
        )
      const outcome = yield* joinOnStartup(gossip.join, {
        entries: config.cluster.join,
        defaultPort: config.gossip.bindAddr.port,
        self: new Set(self === undefined ? [] : [self]),
        timeout: config.cluster.joinTimeout,
      })
      switch (outcome._tag) {
        case "Joined":
          yield* Effect.logInfo("joined cluster").pipe(
            Effect.annotateLogs({ "node-id": gossip.nodeId, "joined-node-ids": outcome.nodeIds.join(",") }),
          )
          break
        case "Alone":
          yield* Effect.logInfo("no other node to join yet")
          break
        case "Failed":
          if (config.cluster.abortIfJoinFails) {
            return yield* new Gossip.GossipError({
              reason: "join failed",
              message: `join failed: ${outcome.reason}`,
            })
          }
          yield* Effect.logWarning("join failed; running alone until a peer reaches this node").pipe(
            Effect.annotateLogs("reason", outcome.reason),
          )
      }
      // Until now the routes this node knew were partial: requests for unknown endpoints waited for them.
      yield* registry.markJoined
    }).pipe(Effect.annotateLogs("subsystem", "cluster")),
  )

/** Gossip over UDP and TCP on --gossip.bind-addr, sealed with the cluster keys when there are any. */
export const gossipLayer = (
  config: ServerConfigShape,
): Layer.Layer<Gossip.Gossip, ListenError, ClusterKeys.ClusterKeys> =>
  Layer.unwrapEffect(
    Effect.map(ClusterKeys.ClusterKeys, ({ keyring }) =>
      Gossip.layer(
        NetTransport.make(config.gossip.bindAddr, (bound) =>
          advertiseAddress(config.gossip.advertiseAddr, bound),
        ),
        {
          nodeId:
            config.cluster.nodeId === ""
              ? Gossip.generateNodeId(config.cluster.nodeIdPrefix)
              : config.cluster.nodeId,
          interval: config.gossip.interval,
          maxPacketSize: config.gossip.maxPacketSize,
          keyring,
        },
      ),
    ),
  )

/**
 * How this node reaches its peers' proxy ports when they serve TLS: verifying them with --proxy.tls.peer-ca-file
 * (or the system's CAs) and presenting its own proxy certificate, for peers that require client certificates.
 */
const loadPeerTls = (config: ServerConfigShape, files: TlsFiles | undefined) =>
  files === undefined
    ? Effect.succeed(undefined)
    : Effect.gen(function* () {
        // The listener's own pair, which makeHttpServer checks; the peers' CA is checked here.
        const cert = yield* readNamedPem(files.certFile, "--proxy.tls.cert-file")
        const key = yield* readNamedPem(files.keyFile, "--proxy.tls.key-file")
        const ca = yield* readCaFile(config.proxy.tls.peerCaFile, "proxy.tls.peer-ca-file")
        return { ca, cert: cert.pem, key: key.pem } satisfies Proxy.PeerTls
      })

/** A port's TLS files, read once now to check them: a bad one fails the start before any port listens. */
const checkedTlsFiles = (settings: TlsSettings, prefix: string) =>
  Effect.tap(tlsFiles(settings, prefix), (files) => (files === undefined ? Effect.void : readTlsFiles(files)))

/** Key material and TLS files, read and checked before anything listens. */
const loadSecurity = (config: ServerConfigShape) =>
  Effect.all({
    keyring: loadClusterKeys(config.gossip.secretKey, "gossip.secret-key"),
    auth: Effect.all({
      upstream: loadTokenKeys(config.auth, "auth"),
      proxy: loadTokenKeys(config.proxy.auth, "proxy.auth"),
      admin: loadTokenKeys(config.admin.auth, "admin.auth"),
    }),
    tls: Effect.all({
      proxy: checkedTlsFiles(config.proxy.tls, "proxy.tls"),
      upstream: checkedTlsFiles(config.upstream.tls, "upstream.tls"),
      admin: checkedTlsFiles(config.admin.tls, "admin.tls"),
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
  gossip: Layer.Layer<Gossip.Gossip, ListenError, ClusterKeys.ClusterKeys> = gossipLayer(config),
): Layer.Layer<ServerServices, ConfigError | ListenError | Gossip.GossipError> =>
  Layer.unwrapEffect(
    loadSecurity(config).pipe(
      Effect.bindTo("security"),
      Effect.bind("peerTls", ({ security }) => loadPeerTls(config, security.tls.proxy)),
      Effect.map(({ security: { keyring, auth, tls }, peerTls }) => {
        const core = Layer.mergeAll(
          Registry.layerAwaitingJoin,
          Shutdown.layer,
          Tunnel.layer({
            interval: config.upstream.heartbeatInterval,
            timeout: config.upstream.heartbeatTimeout,
          }),
          Auth.layer(auth),
          Inspector.layer(config.capture),
        ).pipe(Layer.provideMerge(gossip), Layer.provideMerge(ClusterKeys.layer(keyring)))
        const listeners = Layer.mergeAll(
          Proxy.layerServer(config.proxy.bindAddr, tls.proxy, config.proxy),
          UpstreamListener.layerServer(config.upstream.bindAddr, tls.upstream, config.upstream),
          Admin.layerServer(config.admin.bindAddr, tls.admin, {
            limits: config.admin,
            forwardTimeout: config.admin.forwardTimeout,
            replayBodyBytes: config.capture.bodyKib * 1024,
          }),
        ).pipe(
          Layer.provideMerge(
            Proxy.layer({
              gatewayTimeout: config.proxy.gatewayTimeout,
              idleTimeout: config.proxy.idleTimeout,
              peerTls,
              accessLog: config.accessLog,
            }),
          ),
        )
        return Drain.layer({
          gracePeriod: config.server.gracefulShutdownTimeout,
          propagation: Duration.times(config.gossip.interval, 4),
        }).pipe(
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
  | Proxy.ProxyHandler
  | UpstreamListener.UpstreamServer
  | Admin.AdminServer
  | Registry.Registry
  | Shutdown.Shutdown
  | Tunnel.Tunnel
  | Auth.Auth
  | ClusterKeys.ClusterKeys
  | Gossip.Gossip
  | Inspector.Inspector
