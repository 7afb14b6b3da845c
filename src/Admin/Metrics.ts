import { Effect, type Scope } from "effect"
import { Gossip } from "../Gossip.js"
import type { Handler } from "../internal/Router.js"
import type { Sample } from "../Metrics/Exposition.js"
import { makeMetricsRoute } from "../Metrics/Route.js"
import * as Metrics from "../Metrics.js"
import { ProxyHandler } from "../Proxy.js"
import { Registry } from "../Registry.js"

const statuses = ["active", "unreachable", "left"] as const

/** Every combination of the `deleted` and `internal` labels, so each node's entries show as four series. */
const entryKinds = [
  ["false", "false"],
  ["false", "true"],
  ["true", "false"],
  ["true", "true"],
] as const

/** The gauges and counters that mirror a node's state, read from its services at scrape time. */
const makeStateSamples = Effect.gen(function* () {
  const registry = yield* Registry
  const gossip = yield* Gossip
  const proxy = yield* ProxyHandler
  return Effect.gen(function* () {
    const samples = new Map<string, ReadonlyArray<Sample>>()
    const single = (family: Metrics.Family, value: number) =>
      samples.set(family.name, [{ labels: [], value }])

    const remote = yield* registry.clusterNodes
    samples.set(
      Metrics.clusterNodes.name,
      statuses.map((status) => ({
        labels: [["status", status]],
        // This node is always active: it is the one answering.
        value: remote.filter((node) => node.status === status).length + (status === "active" ? 1 : 0),
      })),
    )

    const entries: Array<Sample> = []
    for (const { id } of [...(yield* gossip.nodes)].sort((a, b) => (a.id < b.id ? -1 : 1))) {
      const node = yield* gossip.node(id)
      if (node._tag === "None") continue
      for (const [deleted, internal] of entryKinds) {
        const value = node.value.entries.filter(
          (entry) => String(entry.deleted) === deleted && String(entry.internal) === internal,
        ).length
        entries.push({
          labels: [
            ["node_id", id],
            ["deleted", deleted],
            ["internal", internal],
          ],
          value,
        })
      }
    }
    samples.set(Metrics.gossipEntries.name, entries)

    const stats = yield* gossip.stats
    single(Metrics.gossipPacketsInbound, stats.packetsIn)
    single(Metrics.gossipPacketsOutbound, stats.packetsOut)
    single(Metrics.gossipStreamsInbound, stats.requestsIn)
    single(Metrics.gossipStreamsOutbound, stats.requestsOut)
    single(Metrics.gossipBytesInbound, stats.bytesIn)
    single(Metrics.gossipBytesOutbound, stats.bytesOut)
    single(Metrics.gossipMalformed, stats.malformed)
    samples.set(
      Metrics.gossipRejected.name,
      Object.entries(stats.rejected).map(([reason, value]) => ({ labels: [["reason", reason]], value })),
    )

    const endpoints = yield* registry.localEndpoints
    let upstreams = 0
    for (const connected of endpoints.values()) upstreams += connected.length
    single(Metrics.proxyConnectedUpstreams, upstreams)
    single(Metrics.proxyRegisteredEndpoints, endpoints.size)

    const tcp = yield* proxy.tcpEndpoints
    samples.set(
      Metrics.proxyTcpConnections.name,
      tcp.map(([endpointId, counters]) => ({ labels: [["endpoint_id", endpointId]], value: counters.open })),
    )
    samples.set(
      Metrics.proxyTcpConnectionsTotal.name,
      tcp.map(([endpointId, counters]) => ({
        labels: [["endpoint_id", endpointId]],
        value: counters.opened,
      })),
    )
    samples.set(
      Metrics.proxyTcpBytes.name,
      tcp.flatMap(([endpointId, counters]) => [
        {
          labels: [
            ["endpoint_id", endpointId],
            ["direction", "from_client"],
          ],
          value: counters.bytesFromClients,
        },
        {
          labels: [
            ["endpoint_id", endpointId],
            ["direction", "to_client"],
          ],
          value: counters.bytesToClients,
        },
      ]),
    )
    return samples
  })
})

/** `/metrics` of a server node: its own series (see Metrics.isolate), its state, and the process's. */
export const makeNodeMetricsRoute: Effect.Effect<
  Handler,
  never,
  Registry | Gossip | ProxyHandler | Scope.Scope
> = Effect.gen(function* () {
  const labels = yield* Metrics.currentLabels
  // Series without labels of their own read 0 before their first event, rather than being absent.
  for (const metric of [
    Metrics.proxyForwardedLocal,
    Metrics.proxyRequestDuration,
    Metrics.upstreamConnections,
    Metrics.upstreamDisconnects,
  ])
    metric.unsafeValue(labels)
  return yield* makeMetricsRoute(Metrics.serverFamilies, [yield* makeStateSamples])
})
