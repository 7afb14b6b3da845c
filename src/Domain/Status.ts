import { Schema } from "effect"

/**
 * The JSON bodies of the admin status API, shared by the server that writes them and `pico status` that reads
 * them. Field order is the order `pico status` prints.
 */

export const NodeStatus = Schema.Literal("active", "unreachable", "left")

/** `/status`: this node, and how its gossip is secured. */
export const Summary = Schema.Struct({
  id: Schema.String,
  gossip: Schema.Struct({
    /** Whether gossip is sealed with cluster keys; false: anyone who reaches the gossip port is believed. */
    authenticated: Schema.Boolean,
    /** How many cluster keys the node accepts (two while a rotation is under way). */
    keys: Schema.Int,
  }),
})
export type Summary = typeof Summary.Type

/** One node in `/status/cluster/nodes`. */
export const NodeSummary = Schema.Struct({
  id: Schema.String,
  status: NodeStatus,
  proxy_addr: Schema.String,
  admin_addr: Schema.String,
  /** How many distinct endpoints have upstreams on the node. */
  endpoints: Schema.Int,
  /** How many upstreams are connected to the node, all endpoints together. */
  upstreams: Schema.Int,
})
export type NodeSummary = typeof NodeSummary.Type

/** `/status/cluster/nodes/<id>`: one node with its upstream count per endpoint. */
export const NodeDetail = Schema.Struct({
  id: Schema.String,
  status: NodeStatus,
  proxy_addr: Schema.String,
  admin_addr: Schema.String,
  endpoints: Schema.Record({ key: Schema.String, value: Schema.Int }),
})
export type NodeDetail = typeof NodeDetail.Type

/** One node in `/status/gossip/nodes`, as gossip knows it. */
export const GossipNodeSummary = Schema.Struct({
  id: Schema.String,
  /** The node's gossip address. */
  addr: Schema.String,
  status: NodeStatus,
  /** The highest version of the node's entries known here. */
  version: Schema.Int,
  /** When a left or unreachable node will be forgotten (RFC 3339); absent for an active node. */
  expiry: Schema.optional(Schema.String),
})
export type GossipNodeSummary = typeof GossipNodeSummary.Type

export const GossipEntry = Schema.Struct({
  key: Schema.String,
  value: Schema.String,
  version: Schema.Int,
  internal: Schema.Boolean,
  deleted: Schema.Boolean,
})

/** `/status/gossip/nodes/<id>`: the node and all its entries, tombstones and internal keys included. */
export const GossipNodeDetail = Schema.Struct({
  ...GossipNodeSummary.fields,
  entries: Schema.Array(GossipEntry),
})
export type GossipNodeDetail = typeof GossipNodeDetail.Type

/** `/status/proxy/endpoints`: each local endpoint and the remote addresses of its upstreams. */
export const ProxyEndpoints = Schema.Record({ key: Schema.String, value: Schema.Array(Schema.String) })
export type ProxyEndpoints = typeof ProxyEndpoints.Type

/**
 * `/status/proxy/tcp`: each TCP endpoint held by this node, with the TCP connections through its tunnels to it
 * (whichever node the clients entered through).
 */
export const ProxyTcpEndpoints = Schema.Record({
  key: Schema.String,
  value: Schema.Struct({
    /** Open now. */
    connections: Schema.Int,
    /** Opened since the node started. */
    connections_total: Schema.Int,
    bytes_from_clients: Schema.Int,
    bytes_to_clients: Schema.Int,
  }),
})
export type ProxyTcpEndpoints = typeof ProxyTcpEndpoints.Type
