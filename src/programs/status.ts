import { Console, Effect, Schema } from "effect"
import YAML from "yaml"
import * as Status from "../Domain/Status.js"
import { StatusClient, type StatusError } from "../Status.js"

/** One `pico status ...` question: what it is called in errors, how it is asked, and how the answer is shown. */
export interface StatusQuery<A = unknown> {
  readonly what: string
  /** Asks the admin route(s) the question needs. */
  readonly ask: Effect.Effect<A, StatusError, StatusClient>
  readonly shape: (answer: A) => unknown
}

const query = <A>(q: StatusQuery<A>): StatusQuery => q as unknown as StatusQuery

/** GETs one admin route and decodes its JSON body. */
const route = <A, I>(
  path: string,
  schema: Schema.Schema<A, I>,
): Effect.Effect<A, StatusError, StatusClient> =>
  Effect.flatMap(StatusClient, (client) => client.get(path, schema))

const byId = <T extends { readonly id: string }>(items: ReadonlyArray<T>): Array<T> =>
  [...items].sort((a, b) => (a.id < b.id ? -1 : 1))

const sortedKeys = <V>(record: Readonly<Record<string, V>>): Record<string, V> =>
  Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : 1)))

/** Every question `pico status` asks, by subcommand. */
export const statusQueries = {
  proxyEndpoints: query({
    what: "proxy endpoints",
    ask: Effect.all({
      endpoints: route("/status/proxy/endpoints", Status.ProxyEndpoints),
      tcp: route("/status/proxy/tcp", Status.ProxyTcpEndpoints),
    }),
    // TCP endpoints get a section of their own, shown only when there are any: the output of a node without
    // them reads exactly as before TCP endpoints existed.
    shape: ({ endpoints, tcp }) => ({
      endpoints: sortedKeys(endpoints),
      ...(Object.keys(tcp).length === 0 ? {} : { tcp_endpoints: sortedKeys(tcp) }),
    }),
  }),
  clusterNodes: query({
    what: "cluster nodes",
    ask: route("/status/cluster/nodes", Schema.Array(Status.NodeSummary)),
    shape: (nodes) => ({ nodes: byId(nodes) }),
  }),
  clusterNode: (id: string) =>
    query({
      what: `cluster node ${id}`,
      ask: route(`/status/cluster/nodes/${encodeURIComponent(id)}`, Status.NodeDetail),
      shape: (node) => ({ ...node, endpoints: sortedKeys(node.endpoints) }),
    }),
  gossipNodes: query({
    what: "gossip nodes",
    ask: route("/status/gossip/nodes", Schema.Array(Status.GossipNodeSummary)),
    shape: (nodes) => ({ nodes: byId(nodes) }),
  }),
  gossipNode: (id: string) =>
    query({
      what: `gossip node ${id}`,
      ask: route(`/status/gossip/nodes/${encodeURIComponent(id)}`, Status.GossipNodeDetail),
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
    const answer = yield* question.ask
    yield* Console.log(format(question.shape(answer), output))
  })
