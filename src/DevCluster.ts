import { randomBytes } from "node:crypto"
import { Context, Effect, Layer } from "effect"
import { AdminServer } from "./Admin.js"
import * as LoadBalancer from "./DevCluster/LoadBalancer.js"
import type { HostPort } from "./Domain/Address.js"
import { Gossip } from "./Gossip.js"
import { load, serverSettings } from "./PicoConfig.js"
import { ProxyServer } from "./Proxy.js"
import { serverLayer } from "./programs/server.js"
import { UpstreamServer } from "./UpstreamListener.js"

export interface DevClusterOptions {
  readonly nodes: number
  /** Where the load balancer listens for each kind of traffic. */
  readonly proxy: HostPort
  readonly upstream: HostPort
  readonly admin: HostPort
  readonly logLevel: "debug" | "info" | "warn" | "error"
}

interface RunningNode {
  readonly id: string
  readonly proxy: HostPort
  readonly upstream: HostPort
  readonly admin: HostPort
  readonly gossip: string
}

const loopback = (port: number): HostPort => ({ host: "127.0.0.1", port })

/**
 * Starts one node on ephemeral loopback ports, joining `join` (the first node's gossip address), with the
 * cluster's gossip key.
 */
const startNode = (
  index: number,
  join: ReadonlyArray<string>,
  gossipKey: string,
  logLevel: DevClusterOptions["logLevel"],
) =>
  Effect.gen(function* () {
    const config = yield* load(serverSettings, {
      flags: {
        "proxy.bind-addr": "127.0.0.1:0",
        "upstream.bind-addr": "127.0.0.1:0",
        "admin.bind-addr": "127.0.0.1:0",
        "gossip.bind-addr": "127.0.0.1:0",
        "cluster.node-id-prefix": `pico-${index + 1}-`,
        "cluster.join": join,
        "gossip.secret-key": [gossipKey],
        "log.level": logLevel,
      },
    })
    const context = yield* Layer.build(serverLayer(config))
    const gossip = Context.get(context, Gossip)
    const self = (yield* gossip.nodes).find((node) => node.id === gossip.nodeId)
    return {
      id: gossip.nodeId,
      proxy: loopback(Context.get(context, ProxyServer).address.port),
      upstream: loopback(Context.get(context, UpstreamServer).address.port),
      admin: loopback(Context.get(context, AdminServer).address.port),
      gossip: self?.addr ?? "",
    } satisfies RunningNode
  })

/**
 * `pico dev cluster`: N real nodes in one process, gossiping over loopback, behind a small load balancer on the
 * usual ports, so the getting-started scenario (a cluster behind a balancer, an agent, curl) needs no Docker.
 */
export const run = (options: DevClusterOptions) =>
  Effect.gen(function* () {
    const nodes: Array<RunningNode> = []
    // A fresh key per run: the nodes share it in memory, and nothing else on the machine can join or forge gossip.
    const gossipKey = randomBytes(32).toString("base64")
    for (let index = 0; index < options.nodes; index++) {
      const join = nodes[0] === undefined ? [] : [nodes[0].gossip]
      // Every log line says which node wrote it (fibers forked while a node starts inherit the annotation).
      nodes.push(
        yield* startNode(index, join, gossipKey, options.logLevel).pipe(
          Effect.annotateLogs("node", `pico-${index + 1}`),
        ),
      )
    }
    for (const node of nodes) {
      yield* Effect.logInfo("node started").pipe(
        Effect.annotateLogs({
          "node-id": node.id,
          proxy: `127.0.0.1:${node.proxy.port}`,
          upstream: `127.0.0.1:${node.upstream.port}`,
          admin: `127.0.0.1:${node.admin.port}`,
          gossip: node.gossip,
        }),
      )
    }
    const balance = (name: string, address: HostPort, pick: (node: RunningNode) => HostPort) =>
      LoadBalancer.make(name, address, () => nodes.map(pick)).pipe(
        Effect.tap((bound) =>
          Effect.logInfo(`load balancer for ${name} listening`).pipe(
            Effect.annotateLogs("addr", `${bound.address}:${bound.port}`),
          ),
        ),
      )
    yield* balance("proxy", options.proxy, (node) => node.proxy)
    yield* balance("upstream", options.upstream, (node) => node.upstream)
    yield* balance("admin", options.admin, (node) => node.admin)
    return yield* Effect.never
  }).pipe(Effect.scoped, Effect.annotateLogs("subsystem", "dev"))
