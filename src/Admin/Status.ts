import { Effect, Option } from "effect"
import { GossipKeys } from "../Domain/GossipKeys.js"
import type * as Status from "../Domain/Status.js"
import { Gossip, type GossipNode } from "../Gossip.js"
import { type Handler, json, jsonError } from "../internal/Router.js"
import { ProxyHandler } from "../Proxy.js"
import { type ClusterNode, Registry } from "../Registry.js"

const byId = (a: { readonly id: string }, b: { readonly id: string }) => (a.id < b.id ? -1 : 1)

/** A JSON object with its keys sorted, so the output reads the same every time. */
const sortedRecord = <V>(entries: Iterable<readonly [string, V]>): Record<string, V> =>
  Object.fromEntries([...entries].sort(([a], [b]) => (a < b ? -1 : 1)))

const summary = (node: Status.NodeDetail): Status.NodeSummary => {
  const counts = Object.values(node.endpoints)
  return {
    id: node.id,
    status: node.status,
    proxy_addr: node.proxy_addr,
    admin_addr: node.admin_addr,
    endpoints: counts.length,
    upstreams: counts.reduce((sum, count) => sum + count, 0),
  }
}

const remoteDetail = (node: ClusterNode): Status.NodeDetail => ({
  id: node.id,
  status: node.status,
  proxy_addr: node.proxyAddr,
  admin_addr: node.adminAddr,
  endpoints: sortedRecord(node.endpoints),
})

const gossipSummary = (node: GossipNode): Status.GossipNodeSummary => ({
  id: node.id,
  addr: node.addr,
  status: node.status,
  version: node.version,
  ...(node.expiresAt === undefined ? {} : { expiry: new Date(node.expiresAt).toISOString() }),
})

const nodeNotFound = jsonError(404, "node not found")

/**
 * The status API: what this node knows about the cluster (through gossip) and about its own upstreams. Node
 * lists are sorted by id; "local" names this node. This node always reports itself active: it is serving.
 */
export const makeStatusRoutes = Effect.gen(function* () {
  const registry = yield* Registry
  const gossip = yield* Gossip
  const proxy = yield* ProxyHandler

  const localDetail = Effect.gen(function* () {
    const entries = yield* gossip.localEntries
    const endpoints = yield* registry.localEndpoints
    return {
      id: gossip.nodeId,
      status: "active",
      proxy_addr: entries.get(GossipKeys.proxyAddr) ?? "",
      admin_addr: entries.get(GossipKeys.adminAddr) ?? "",
      endpoints: sortedRecord(
        [...endpoints].map(([endpointId, upstreams]) => [endpointId, upstreams.length]),
      ),
    } satisfies Status.NodeDetail
  })

  const clusterNode = (id: string) =>
    id === "local" || id === gossip.nodeId
      ? localDetail
      : Effect.map(registry.clusterNodes, (nodes) => {
          const node = nodes.find((candidate) => candidate.id === id)
          return node === undefined ? undefined : remoteDetail(node)
        })

  const routes: Record<string, Handler> = {
    "/status": () =>
      Effect.succeed(
        json(200, {
          id: gossip.nodeId,
          gossip: { authenticated: gossip.keys > 0, keys: gossip.keys },
        } satisfies Status.Summary),
      ),
    "/status/cluster/nodes": () =>
      Effect.gen(function* () {
        const local = yield* localDetail
        const remote = yield* registry.clusterNodes
        return json(200, [local, ...remote.map(remoteDetail)].map(summary).sort(byId))
      }),
    "/status/cluster/nodes/:id": (id) =>
      Effect.map(clusterNode(id), (node) => (node === undefined ? nodeNotFound : json(200, node))),
    "/status/gossip/nodes": () =>
      Effect.map(gossip.nodes, (nodes) => json(200, [...nodes].sort(byId).map(gossipSummary))),
    "/status/gossip/nodes/:id": (id) =>
      Effect.map(
        gossip.node(id === "local" ? gossip.nodeId : id),
        Option.match({
          onNone: () => nodeNotFound,
          onSome: (node) =>
            json(200, {
              ...gossipSummary(node),
              entries: [...node.entries].sort((a, b) => a.version - b.version),
            } satisfies Status.GossipNodeDetail),
        }),
      ),
    "/status/proxy/endpoints": () =>
      Effect.map(registry.localEndpoints, (endpoints) =>
        json(
          200,
          sortedRecord(
            [...endpoints].map(([endpointId, upstreams]) => [
              endpointId,
              upstreams.map((upstream) => upstream.remoteAddr),
            ]),
          ) satisfies Status.ProxyEndpoints,
        ),
      ),
    "/status/proxy/tcp": () =>
      Effect.map(proxy.tcpEndpoints, (endpoints) =>
        json(
          200,
          Object.fromEntries(
            endpoints.map(([endpointId, counters]) => [
              endpointId,
              {
                connections: counters.open,
                connections_total: counters.opened,
                bytes_from_clients: counters.bytesFromClients,
                bytes_to_clients: counters.bytesToClients,
              },
            ]),
          ) satisfies Status.ProxyTcpEndpoints,
        ),
      ),
  }
  return routes
})
