import { Context, Effect, Layer, Metric, Queue, type Scope } from "effect"
import type { EndpointId } from "./Domain/EndpointId.js"
import type { EndpointKind } from "./Domain/EndpointKind.js"
import { endpointKey, endpointValue } from "./Domain/GossipKeys.js"
import { Gossip } from "./Gossip.js"
import * as Metrics from "./Metrics.js"
import { type ClusterNode, ClusterView } from "./Registry/ClusterView.js"
import type { TunnelSession } from "./Tunnel.js"

export type { ClusterNode } from "./Registry/ClusterView.js"

/** One connected upstream: a tunnel session registered for an endpoint. */
export interface Upstream {
  readonly endpointId: EndpointId
  /** What the endpoint carries, as its agent said when it connected. */
  readonly kind: EndpointKind
  /** The remote address of the upstream's WebSocket connection, for status output and logs. */
  readonly remoteAddr: string
  readonly session: TunnelSession
}

/** Round-robin rotation of the upstreams of one endpoint, which all have the endpoint's kind. */
interface Rotation {
  readonly kind: EndpointKind
  readonly upstreams: Array<Upstream>
  next: number
}

/**
 * Which upstreams are connected to this node, by endpoint. Registering also publishes the endpoint's upstream
 * count through gossip so other nodes can route to it.
 */
export class Registry extends Context.Tag("pico/Registry")<
  Registry,
  {
    /** Adds the upstream for the lifetime of the current scope. */
    readonly register: (upstream: Upstream) => Effect.Effect<void, never, Scope.Scope>
    /**
     * The endpoint's kind: its local upstreams' or, without any, the kind the active nodes holding it advertise;
     * undefined when nobody holds it. The upstream port refuses an upstream of the other kind: an endpoint id means
     * one thing.
     */
    readonly kindOf: (endpointId: EndpointId) => EndpointKind | undefined
    /**
     * The next upstream of the endpoint (round robin) that can still take a new stream, or undefined. Synchronous
     * because it runs once per proxied request.
     */
    readonly pickLocal: (endpointId: EndpointId) => Upstream | undefined
    /**
     * A remote active node holding the endpoint, weighted by its upstream count, skipping `exclude` (nodes
     * already tried). Synchronous: it runs once per forwarded request.
     */
    readonly pickRemote: (endpointId: EndpointId, exclude: ReadonlySet<string>) => ClusterNode | undefined
    /** Every remote node whose addresses are known (for the status API and metrics). */
    readonly clusterNodes: Effect.Effect<ReadonlyArray<ClusterNode>>
    /** Local endpoints and their upstreams, for the status API. */
    readonly localEndpoints: Effect.Effect<ReadonlyMap<EndpointId, ReadonlyArray<Upstream>>>
    /** Asks every upstream to reconnect elsewhere: the node is draining. */
    readonly goAwayAll: Effect.Effect<void>
    /**
     * Stops advertising this node's endpoints to the cluster (draining): peers stop routing here, while the
     * local upstreams keep serving whatever still arrives.
     */
    readonly withdraw: Effect.Effect<void>
    /** Completes at the next change of any route, local or remote: a request waiting for one looks again. */
    readonly routeChanged: Effect.Effect<void>
    /**
     * Whether a route for the endpoint may appear any moment: the node has not finished joining its cluster yet,
     * or the endpoint lost a route (local or remote) in the last minute. A request for it then waits for the
     * cluster to converge, while one for an endpoint nobody has held fails at once.
     */
    readonly routeExpected: (endpointId: EndpointId) => boolean
    /** The node has joined its cluster (or found nobody to join): its view of the routes is complete. */
    readonly markJoined: Effect.Effect<void>
    readonly hasJoined: () => boolean
  }
>() {}

/** How long an endpoint that lost its route counts as coming back (an agent moving, a node restarting). */
const RECENTLY_LOST_MS = 60_000
/** Past this many remembered endpoints, the old memories are dropped. */
const LOST_MEMORY = 10_000

/**
 * `awaitJoin`: the node joins a cluster after its listeners start (a server): until `markJoined`, its routes are
 * incomplete, so readiness is off and requests for unknown endpoints wait. Otherwise the node is complete at once.
 */
export const make = (options: { readonly awaitJoin: boolean }) =>
  Effect.gen(function* () {
    const gossip = yield* Gossip
    const rotations = new Map<EndpointId, Rotation>()
    let withdrawn = false

    // --- Route changes ---

    // Kept closed: opening it for an instant releases everyone waiting for the next change.
    const changes = Effect.unsafeMakeLatch(false)
    const notifyRouteChange = () => {
      changes.unsafeOpen()
      changes.unsafeClose()
    }

    const lostAt = new Map<string, number>()
    const lost = (endpointId: string) => {
      const now = Date.now()
      if (lostAt.size >= LOST_MEMORY) {
        for (const [id, at] of lostAt) if (now - at >= RECENTLY_LOST_MS) lostAt.delete(id)
      }
      lostAt.delete(endpointId)
      lostAt.set(endpointId, now)
    }
    let joined = !options.awaitJoin
    const routeExpected = (endpointId: string) => {
      if (!joined) return true
      const at = lostAt.get(endpointId)
      return at !== undefined && Date.now() - at < RECENTLY_LOST_MS
    }

    // --- Local upstreams ---

    const publishCount = (endpointId: EndpointId) => {
      const rotation = rotations.get(endpointId)
      return rotation === undefined || withdrawn
        ? gossip.deleteLocal(endpointKey(endpointId))
        : gossip.setLocal(endpointKey(endpointId), endpointValue(rotation.upstreams.length, rotation.kind))
    }

    const add = (upstream: Upstream) =>
      Effect.suspend(() => {
        const rotation = rotations.get(upstream.endpointId)
        if (rotation === undefined)
          rotations.set(upstream.endpointId, { kind: upstream.kind, upstreams: [upstream], next: 0 })
        else rotation.upstreams.push(upstream)
        notifyRouteChange()
        return publishCount(upstream.endpointId)
      })

    const remove = (upstream: Upstream) =>
      Effect.suspend(() => {
        const rotation = rotations.get(upstream.endpointId)
        if (rotation === undefined) return Effect.void
        const index = rotation.upstreams.indexOf(upstream)
        if (index < 0) return Effect.void
        rotation.upstreams.splice(index, 1)
        if (rotation.upstreams.length === 0) {
          rotations.delete(upstream.endpointId)
          lost(upstream.endpointId)
        } else {
          // Keep the rotation fair: the upstream after the removed one is still next.
          if (index < rotation.next) rotation.next--
          rotation.next %= rotation.upstreams.length
        }
        notifyRouteChange()
        return publishCount(upstream.endpointId)
      })

    const pickLocal = (endpointId: EndpointId): Upstream | undefined => {
      const rotation = rotations.get(endpointId)
      if (rotation === undefined) return undefined
      const { upstreams } = rotation
      // An upstream whose session is closing is skipped rather than failing the request while another is live.
      for (let tried = 0; tried < upstreams.length; tried++) {
        const upstream = upstreams[rotation.next] as Upstream
        rotation.next = (rotation.next + 1) % upstreams.length
        if (upstream.session.canOpenStream()) return upstream
      }
      return undefined
    }

    // The cluster view follows gossip for as long as the registry lives.
    const view = new ClusterView()
    const events = yield* gossip.subscribe
    yield* Effect.forkScoped(
      Queue.take(events).pipe(
        Effect.tap((event) =>
          Effect.sync(() => {
            for (const endpointId of view.apply(event)) lost(endpointId)
            notifyRouteChange()
          }),
        ),
        Effect.forever,
      ),
    )

    return Registry.of({
      // Counted here, so connections minus disconnects is always the connected-upstreams gauge.
      register: (upstream) =>
        Effect.acquireRelease(
          Effect.zipRight(add(upstream), Metric.increment(Metrics.upstreamConnections)),
          () => Effect.zipRight(remove(upstream), Metric.increment(Metrics.upstreamDisconnects)),
        ),
      kindOf: (endpointId) => rotations.get(endpointId)?.kind ?? view.kindOf(endpointId),
      pickLocal,
      pickRemote: (endpointId, exclude) => view.pick(endpointId, exclude),
      clusterNodes: Effect.sync(() => view.list()),
      localEndpoints: Effect.sync(
        () => new Map([...rotations].map(([endpointId, rotation]) => [endpointId, [...rotation.upstreams]])),
      ),
      goAwayAll: Effect.suspend(() =>
        Effect.forEach(
          [...rotations.values()].flatMap((rotation) => rotation.upstreams),
          (upstream) => upstream.session.goAway,
          { discard: true },
        ),
      ),
      withdraw: Effect.suspend(() => {
        withdrawn = true
        return Effect.forEach(rotations.keys(), (endpointId) => gossip.deleteLocal(endpointKey(endpointId)), {
          discard: true,
        })
      }),
      routeChanged: changes.await,
      routeExpected,
      markJoined: Effect.sync(() => {
        joined = true
        notifyRouteChange()
      }),
      hasJoined: () => joined,
    })
  })

export const layer: Layer.Layer<Registry, never, Gossip> = Layer.scoped(Registry, make({ awaitJoin: false }))

/** The registry of a node that joins its cluster once listening (see `make`); the join calls `markJoined`. */
export const layerAwaitingJoin: Layer.Layer<Registry, never, Gossip> = Layer.scoped(
  Registry,
  make({ awaitJoin: true }),
)
