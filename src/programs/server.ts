import { Effect, Layer } from "effect"
import * as Admin from "../Admin.js"
import * as Auth from "../Auth.js"
import { parseHostPort } from "../Domain/Address.js"
import * as Gossip from "../Gossip.js"
import type { ServerConfigShape } from "../PicoConfig.js"
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

/**
 * A whole node: the proxy, upstream and admin listeners over the shared registry, tunnel and auth services.
 * `gossip` is the cluster transport (a single node until clustering is configured; tests pass an in-memory one).
 */
export const serverLayer = (
  config: ServerConfigShape,
  gossip: Layer.Layer<Gossip.Gossip> = Gossip.layerSingleNode(),
) => {
  const core = Layer.mergeAll(
    Registry.layer,
    Shutdown.layer,
    Tunnel.layer({ interval: config.upstream.heartbeatInterval, timeout: config.upstream.heartbeatTimeout }),
    Auth.layerAllowAll,
  ).pipe(Layer.provideMerge(gossip))
  const listeners = Layer.mergeAll(
    Proxy.layerServer(address(config.proxy.bindAddr)),
    UpstreamListener.layerServer(address(config.upstream.bindAddr)),
    Admin.layerServer(address(config.admin.bindAddr)),
  ).pipe(Layer.provide(Proxy.layer({ gatewayTimeout: config.proxy.gatewayTimeout })))
  return drainOnShutdown(config.server.gracefulShutdownTimeout).pipe(
    Layer.provideMerge(listeners),
    Layer.provideMerge(core),
  )
}
