import { randomInt } from "node:crypto"
import { Context, Effect, Layer } from "effect"

/**
 * Cluster membership and the anti-entropy of per-node key/value state. Each node owns its entries (`proxy_addr`,
 * `endpoint:<id>` = upstream count, ...) and gossip spreads them to every other node.
 */
export class Gossip extends Context.Tag("pico/Gossip")<
  Gossip,
  {
    /** This node's id, fresh for every process start. */
    readonly nodeId: string
    readonly setLocal: (key: string, value: string) => Effect.Effect<void>
    readonly deleteLocal: (key: string) => Effect.Effect<void>
    /** The local node's current entries. */
    readonly localEntries: Effect.Effect<ReadonlyMap<string, string>>
  }
>() {}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

/** A node id: the prefix plus 7 random characters, so a restarted process never reuses an old identity. */
export const generateNodeId = (prefix = ""): string => {
  let suffix = ""
  for (let i = 0; i < 7; i++) suffix += idAlphabet[randomInt(idAlphabet.length)]
  return prefix + suffix
}

/** A cluster of one: entries are kept locally and go nowhere. */
export const layerSingleNode = (nodeId: string = generateNodeId()): Layer.Layer<Gossip> =>
  Layer.sync(Gossip, () => {
    const entries = new Map<string, string>()
    return Gossip.of({
      nodeId,
      setLocal: (key, value) => Effect.sync(() => void entries.set(key, value)),
      deleteLocal: (key) => Effect.sync(() => void entries.delete(key)),
      localEntries: Effect.sync(() => new Map(entries)),
    })
  })
