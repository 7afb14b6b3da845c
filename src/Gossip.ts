import { randomInt } from "node:crypto"
import { Context, Effect, Layer, type Scope } from "effect"
import type { Keyring } from "./ClusterKeys.js"
import * as Engine from "./Gossip/Engine.js"
import type { MemoryNetwork } from "./Gossip/MemoryNetwork.js"
import * as Seal from "./Gossip/Seal.js"
import { isolated, type Transport } from "./Gossip/Transport.js"

export * as MemoryNetwork from "./Gossip/MemoryNetwork.js"
export { type RejectReason, rejectReasons } from "./Gossip/Seal.js"
export type { GossipEntry, GossipEvent, GossipNode, NodeStatus } from "./Gossip/State.js"
export { type Handler as TransportHandler, type Transport, TransportError } from "./Gossip/Transport.js"

import { GossipError } from "./Gossip/GossipError.js"

export { GossipError } from "./Gossip/GossipError.js"

/** Traffic counters since start, and the messages dropped for failing authentication, by reason. */
export interface GossipStats extends Engine.Stats {
  readonly rejected: Readonly<Record<Seal.RejectReason, number>>
}

/**
 * Cluster membership and the anti-entropy of per-node key/value state. Each node owns its entries (`proxy_addr`,
 * `endpoint:<id>` = upstream count, ...) and gossip spreads them to every other node, detects failed nodes and
 * removes them. Wire format, timing, failure detection and authentication: `Gossip/Message.ts`,
 * `Gossip/Engine.ts`, `Gossip/FailureDetector.ts`, `Gossip/Seal.ts`.
 */
export class Gossip extends Context.Tag("pico/Gossip")<
  Gossip,
  Omit<Engine.Engine, "join" | "leave" | "stats"> & {
    /** How many cluster keys authenticate gossip; 0: none, and anyone who reaches the gossip port is believed. */
    readonly keys: number
    readonly stats: Effect.Effect<GossipStats>
    /**
     * Contacts the given gossip addresses (host:port) and exchanges full state; resolves to the node ids reached.
     * Fails only if none could be reached.
     */
    readonly join: (addresses: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<string>, GossipError>
    /** Announces this node leaving (it is then "left" everywhere); idempotent. */
    readonly leave: Effect.Effect<void, GossipError>
  }
>() {}

/** Settings of a node; every field but the id has the documented default. */
export type GossipOptions = Partial<Engine.Options> & {
  /** The cluster keys that seal every message (`--gossip.secret-key`); none: gossip is unauthenticated. */
  readonly keyring?: Keyring | undefined
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

/** A node id: the prefix plus 7 random characters, so a restarted process never reuses an old identity. */
export const generateNodeId = (prefix = ""): string => {
  let suffix = ""
  for (let i = 0; i < 7; i++) suffix += idAlphabet[randomInt(idAlphabet.length)]
  return prefix + suffix
}

/** A node gossiping over the transport for the lifetime of the scope, its messages sealed when keyed. */
export const make = (
  transport: Transport,
  { keyring, ...options }: GossipOptions = {},
): Effect.Effect<Gossip["Type"], never, Scope.Scope> =>
  Effect.gen(function* () {
    const keys = keyring?.subkeys("gossip")
    const sealed = yield* Seal.make(transport, keys)
    const engine = yield* Engine.make(sealed.transport, {
      ...options,
      nodeId: options.nodeId ?? generateNodeId(),
      // The limit is on the datagram as sent, seal included.
      maxPacketSize:
        (options.maxPacketSize ?? Engine.defaultMaxPacketSize) - (keys === undefined ? 0 : Seal.overhead),
    })
    return Gossip.of({
      ...engine,
      keys: keys?.length ?? 0,
      stats: Effect.zipWith(engine.stats, sealed.rejected, (stats, rejected) => ({ ...stats, rejected })),
      join: (addresses) =>
        Effect.flatMap(engine.join(addresses), ({ joined, failures }) =>
          joined.length > 0 || failures.length === 0
            ? Effect.succeed(joined)
            : Effect.fail(new GossipError({ reason: "join failed", message: failures.join("; ") })),
        ),
      // Nobody to tell is fine: the last node of a cluster leaves alone.
      leave: Effect.flatMap(engine.leave, ({ notified, peers, failures }) =>
        notified > 0 || peers === 0
          ? Effect.void
          : Effect.fail(new GossipError({ reason: "leave failed", message: failures.join("; ") })),
      ),
    })
  })

/**
 * A node gossiping over the transport, which the layer acquires (and releases) with itself: the UDP/TCP transport
 * in a server, a `MemoryNetwork` endpoint in tests.
 */
export const layer = <E, R>(
  transport: Effect.Effect<Transport, E, R>,
  options: GossipOptions = {},
): Layer.Layer<Gossip, E, Exclude<R, Scope.Scope>> =>
  Layer.scoped(
    Gossip,
    Effect.flatMap(transport, (acquired) => make(acquired, options)),
  )

/** A node on a simulated network, reachable there at `address`. */
export const layerMemory = (
  network: MemoryNetwork,
  options: GossipOptions & { readonly address: string },
): Layer.Layer<Gossip> =>
  layer(
    Effect.sync(() => network.transport(options.address)),
    options,
  )

/** A cluster of one: entries are kept locally and go nowhere, and joining fails. */
export const layerSingleNode = (nodeId: string = generateNodeId()): Layer.Layer<Gossip> =>
  layer(Effect.succeed(isolated), { nodeId })
