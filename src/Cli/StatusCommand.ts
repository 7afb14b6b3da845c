import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Console, Effect, Redacted, Schema } from "effect"
import YAML from "yaml"
import * as Status from "../Domain/Status.js"
import { readSecretValue } from "../PicoConfig/KeyMaterial.js"
import { statusSettings } from "../PicoConfig/Status.js"
import { fetchStatus, StatusError } from "../Status.js"
import { loadSettings } from "./Program.js"
import type { Runner } from "./Spec.js"

/** Field order is the schemas' (id, status, addresses, counts), sequences start at their key's indent. */
const format = (value: unknown, output: "yaml" | "json"): string =>
  output === "json" ? JSON.stringify(value, null, 2) : YAML.stringify(value, { indentSeq: false }).trimEnd()

const byId = <T extends { readonly id: string }>(items: ReadonlyArray<T>): Array<T> =>
  [...items].sort((a, b) => (a.id < b.id ? -1 : 1))

const sortedKeys = <V>(record: Readonly<Record<string, V>>): Record<string, V> =>
  Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : 1)))

/** What a leaf command asks for, given its arguments: its name in error messages and the admin API route. */
type Request = (args: ReadonlyArray<string>) => { readonly what: string; readonly path: string }

/**
 * A leaf command: fetches its route, shapes the answer for printing and prints it. Any failure is one line on
 * stderr ("failed to get cluster nodes: cannot reach localhost:8002: connect ECONNREFUSED ...") and exit 1.
 */
const show =
  <A, I>(request: Request, schema: Schema.Schema<A, I>, shape: (answer: A) => unknown): Runner =>
  (invocation) =>
    Effect.gen(function* () {
      const settings = yield* loadSettings(statusSettings, invocation)
      const { what, path } = request(invocation.args)
      yield* Effect.gen(function* () {
        const token = yield* readSecretValue(settings.auth.token, "auth.token").pipe(
          Effect.mapError((error) => new StatusError({ message: error.message })),
        )
        const target = {
          serverUrl: settings.server.url,
          forward: settings.forward === "" ? undefined : settings.forward,
          token: token === undefined ? undefined : Redacted.make(token),
          timeout: settings.timeout,
        }
        const answer = yield* fetchStatus(target, path, schema)
        yield* Console.log(format(shape(answer), settings.output))
      }).pipe(Effect.tapError((error) => Console.error(`failed to get ${what}: ${error.message}`)))
    }).pipe(Effect.provide(NodeHttpClient.layer))

export const proxyEndpoints = show(
  () => ({ what: "proxy endpoints", path: "/status/proxy/endpoints" }),
  Status.ProxyEndpoints,
  (endpoints) => ({ endpoints: sortedKeys(endpoints) }),
)

export const clusterNodes = show(
  () => ({ what: "cluster nodes", path: "/status/cluster/nodes" }),
  Schema.Array(Status.NodeSummary),
  (nodes) => ({ nodes: byId(nodes) }),
)

export const clusterNode = show(
  ([id = ""]) => ({ what: `cluster node ${id}`, path: `/status/cluster/nodes/${encodeURIComponent(id)}` }),
  Status.NodeDetail,
  (node) => ({ ...node, endpoints: sortedKeys(node.endpoints) }),
)

export const gossipNodes = show(
  () => ({ what: "gossip nodes", path: "/status/gossip/nodes" }),
  Schema.Array(Status.GossipNodeSummary),
  (nodes) => ({ nodes: byId(nodes) }),
)

export const gossipNode = show(
  ([id = ""]) => ({ what: `gossip node ${id}`, path: `/status/gossip/nodes/${encodeURIComponent(id)}` }),
  Status.GossipNodeDetail,
  (node) => node,
)
