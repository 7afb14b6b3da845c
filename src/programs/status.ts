import { Console, Effect, Schema } from "effect"
import YAML from "yaml"
import * as Status from "../Domain/Status.js"
import { StatusClient, type StatusError } from "../Status.js"

/** One `pico status ...` question: what it is called in errors, the admin route, and how the answer is shown. */
export interface StatusQuery<A = unknown, I = unknown> {
  readonly what: string
  readonly path: string
  readonly schema: Schema.Schema<A, I>
  readonly shape: (answer: A) => unknown
}

const query = <A, I>(q: StatusQuery<A, I>): StatusQuery => q as unknown as StatusQuery

const byId = <T extends { readonly id: string }>(items: ReadonlyArray<T>): Array<T> =>
  [...items].sort((a, b) => (a.id < b.id ? -1 : 1))

const sortedKeys = <V>(record: Readonly<Record<string, V>>): Record<string, V> =>
  Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : 1)))

/** Every question `pico status` asks, by subcommand. */
export const statusQueries = {
  proxyEndpoints: query({
    what: "proxy endpoints",
    path: "/status/proxy/endpoints",
    schema: Status.ProxyEndpoints,
    shape: (endpoints) => ({ endpoints: sortedKeys(endpoints) }),
  }),
  clusterNodes: query({
    what: "cluster nodes",
    path: "/status/cluster/nodes",
    schema: Schema.Array(Status.NodeSummary),
    shape: (nodes) => ({ nodes: byId(nodes) }),
  }),
  clusterNode: (id: string) =>
    query({
      what: `cluster node ${id}`,
      path: `/status/cluster/nodes/${encodeURIComponent(id)}`,
      schema: Status.NodeDetail,
      shape: (node) => ({ ...node, endpoints: sortedKeys(node.endpoints) }),
    }),
  gossipNodes: query({
    what: "gossip nodes",
    path: "/status/gossip/nodes",
    schema: Schema.Array(Status.GossipNodeSummary),
    shape: (nodes) => ({ nodes: byId(nodes) }),
  }),
  gossipNode: (id: string) =>
    query({
      what: `gossip node ${id}`,
      path: `/status/gossip/nodes/${encodeURIComponent(id)}`,
      schema: Status.GossipNodeDetail,
      shape: (node) => node,
    }),
}

/** Field order is the schemas' (id, status, addresses, counts); sequences start at their key's indent. */
const format = (value: unknown, output: "yaml" | "json"): string =>
  output === "json" ? JSON.stringify(value, null, 2) : YAML.stringify(value, { indentSeq: false }).trimEnd()

/**
 * `pico status`'s program: asks the StatusClient one question and prints the answer. Its graph is this over
 * `StatusClient.layer` (HTTP to --server.url); a library user or a test provides another StatusClient.
 */
export const statusProgram = (
  question: StatusQuery,
  output: "yaml" | "json",
): Effect.Effect<void, StatusError, StatusClient> =>
  Effect.gen(function* () {
    const client = yield* StatusClient
    const answer = yield* client.get(question.path, question.schema)
    yield* Console.log(format(question.shape(answer), output))
  })
