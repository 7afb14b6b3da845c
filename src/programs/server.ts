import { Effect, Layer } from "effect"
import * as Admin from "../Admin.js"
import * as Auth from "../Auth.js"
import { parseHostPort } from "../Domain/Address.js"
import * as Gossip from "../Gossip.js"
import type { ListenError } from "../internal/Listen.js"
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
      yield* shutdown.onDrain(registry.goAwayAll)
      yield* Effect.addFinalizer(() =>
        Effect.gen(function* () {
          yield* Effect.logInfo("shutting down: draining")
          const { abandoned } = yield* shutdown.drain(gracePeriod)
          if (abandoned > 0)
            yield* Effect.logWarning("grace period over; cutting requests").pipe(
              Effect.annotateLogs("in_flight", abandoned),
            )
          yield* Effect.logInfo("shutdown complete")
        }).pipe(Effect.annotateLogs("subsystem", "server")),
      )
    }),
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
 * A whole node: the proxy, upstream and admin listeners over the shared registry, tunnel and auth services.
 * `gossip` is the cluster transport (a single node until clustering is configured; tests pass an in-memory one).
 * Fails with ConfigError when key material or certificates are unusable.
 */
export const serverLayer = (
  config: ServerConfigShape,
  gossip: Layer.Layer<Gossip.Gossip> = Gossip.layerSingleNode(),
): Layer.Layer<ServerServices, ConfigError | ListenError> =>
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
        ).pipe(Layer.provideMerge(gossip))
        const listeners = Layer.mergeAll(
          Proxy.layerServer(address(config.proxy.bindAddr), tls.proxy),
          UpstreamListener.layerServer(address(config.upstream.bindAddr)),
          Admin.layerServer(address(config.admin.bindAddr), tls.admin),
        ).pipe(Layer.provide(Proxy.layer({ gatewayTimeout: config.proxy.gatewayTimeout })))
        return drainOnShutdown(config.server.gracefulShutdownTimeout).pipe(
          Layer.provideMerge(listeners),
          Layer.provideMerge(core),
        )
      }),
    ),
  )

/** What a running node provides, for tests and embedders that want its bound addresses or registry. */
export type ServerServices =
  | Proxy.ProxyServer
  | UpstreamListener.UpstreamServer
  | Admin.AdminServer
  | Registry.Registry
  | Shutdown.Shutdown
  | Tunnel.Tunnel
  | Auth.Auth
  | Gossip.Gossip
