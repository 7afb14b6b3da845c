import { Args, Command, Options } from "@effect/cli"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Console, Effect, Option, Redacted, Schema } from "effect"
import YAML from "yaml"
import * as Status from "./Domain/Status.js"
import { readSecretValue } from "./PicoConfig/KeyMaterial.js"
import { fetchStatus, StatusError, type StatusTarget } from "./Status.js"

const statusOptions = {
  serverUrl: Options.text("server.url").pipe(
    Options.withDescription("The admin URL of a Pico node, or of a load balancer in front of them."),
    Options.withDefault("http://localhost:8002"),
  ),
  forward: Options.text("forward").pipe(
    Options.withDescription("Run the request on this node (its id) instead of the one that answers the URL."),
    Options.optional,
  ),
  token: Options.redacted("auth.token").pipe(
    Options.withDescription(
      'Token (JWT) sent as "Authorization: Bearer <token>" to an admin port that requires one. ' +
        '"file:PATH" reads it from a file.',
    ),
    Options.optional,
  ),
  output: Options.choice("output", ["yaml", "json"]).pipe(
    Options.withDescription("How to print the answer."),
    Options.withDefault("yaml" as const),
  ),
}

const statusParent = Command.make("status", statusOptions)

/** Field order is the schemas' (id, status, addresses, counts), sequences start at their key's indent. */
const format = (value: unknown, output: "yaml" | "json"): string =>
  output === "json" ? JSON.stringify(value, null, 2) : YAML.stringify(value, { indentSeq: false }).trimEnd()

const byId = <T extends { readonly id: string }>(items: ReadonlyArray<T>): Array<T> =>
  [...items].sort((a, b) => (a.id < b.id ? -1 : 1))

const sortedKeys = <V>(record: Readonly<Record<string, V>>): Record<string, V> =>
  Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : 1)))

/**
 * A leaf command: fetches `path`, shapes the answer for printing and prints it. Any failure is one line on
 * stderr ("failed to get cluster nodes: cannot reach localhost:8002: connect ECONNREFUSED ...") and exit 1.
 */
const show = <A, I>(what: string, path: string, schema: Schema.Schema<A, I>, shape: (answer: A) => unknown) =>
  Effect.gen(function* () {
    const { serverUrl, forward, token, output } = yield* statusParent
    const secret = Option.isSome(token)
      ? yield* readSecretValue(Redacted.value(token.value), "auth.token").pipe(
          Effect.mapError((error) => new StatusError({ message: error.message })),
        )
      : undefined
    const target: StatusTarget = {
      serverUrl,
      forward: Option.getOrUndefined(forward),
      token: secret === undefined ? undefined : Redacted.make(secret),
    }
    const answer = yield* fetchStatus(target, path, schema)
    yield* Console.log(format(shape(answer), output))
  }).pipe(Effect.tapError((error) => Console.error(`failed to get ${what}: ${error.message}`)))

const nodeId = Args.text({ name: "node-id" }).pipe(
  Args.withDescription('A node id, as `pico status cluster nodes` lists them; "local": the node answering.'),
)

const proxyEndpoints = Command.make("endpoints", {}, () =>
  show("proxy endpoints", "/status/proxy/endpoints", Status.ProxyEndpoints, (endpoints) => ({
    endpoints: sortedKeys(endpoints),
  })),
).pipe(Command.withDescription("The node's endpoints and the addresses of their connected upstreams."))

const clusterNodes = Command.make("nodes", {}, () =>
  show("cluster nodes", "/status/cluster/nodes", Schema.Array(Status.NodeSummary), (nodes) => ({
    nodes: byId(nodes),
  })),
).pipe(Command.withDescription("Every node the answering node knows, with its endpoint and upstream counts."))

const clusterNode = Command.make("node", { id: nodeId }, ({ id }) =>
  show(
    `cluster node ${id}`,
    `/status/cluster/nodes/${encodeURIComponent(id)}`,
    Status.NodeDetail,
    (node) => ({
      ...node,
      endpoints: sortedKeys(node.endpoints),
    }),
  ),
).pipe(Command.withDescription("One node, with the number of upstreams of each of its endpoints."))

const gossipNodes = Command.make("nodes", {}, () =>
  show("gossip nodes", "/status/gossip/nodes", Schema.Array(Status.GossipNodeSummary), (nodes) => ({
    nodes: byId(nodes),
  })),
).pipe(Command.withDescription("Gossip's view of every node: address, status, version, expiry."))

const gossipNode = Command.make("node", { id: nodeId }, ({ id }) =>
  show(
    `gossip node ${id}`,
    `/status/gossip/nodes/${encodeURIComponent(id)}`,
    Status.GossipNodeDetail,
    (node) => node,
  ),
).pipe(
  Command.withDescription("One node's gossip state: every entry, tombstones and internal keys included."),
)

const proxy = Command.make("proxy").pipe(
  Command.withDescription("What the node proxies."),
  Command.withSubcommands([proxyEndpoints]),
)

const cluster = Command.make("cluster").pipe(
  Command.withDescription("The cluster as the node sees it."),
  Command.withSubcommands([clusterNodes, clusterNode]),
)

const gossip = Command.make("gossip").pipe(
  Command.withDescription("The gossip state behind the cluster view."),
  Command.withSubcommands([gossipNodes, gossipNode]),
)

/**
 * `pico status ...`: inspects a running cluster through a node's admin API and prints YAML (or JSON). The
 * flags go anywhere after `status`: `pico status cluster nodes --forward pico-2-abcdefg`.
 */
export const status = statusParent.pipe(
  Command.withDescription(
    "Inspect a running Pico cluster through a node's admin API. Example: " +
      "pico status cluster nodes --server.url http://pico.internal:8002",
  ),
  Command.withSubcommands([proxy, cluster, gossip]),
  Command.provide(NodeHttpClient.layer),
)
