import { Console, Effect, Schema, Stream } from "effect"
import YAML from "yaml"
import * as Capture from "../Domain/Capture.js"
import * as Status from "../Domain/Status.js"
import { StatusClient, StatusError } from "../Status.js"

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

/** A captured body as a reader wants it: text when it is UTF-8 text, else base64. */
const readableBody = (body: Capture.CapturedBody) => {
  const bytes = Buffer.from(body.base64, "base64")
  const text = bytes.toString("utf8")
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what mark a body as binary.
  const isText = Buffer.from(text, "utf8").equals(bytes) && !/[\u0000-\u0008\u000e-\u001f]/.test(text)
  return { size: body.size, truncated: body.truncated, ...(isText ? { text } : { base64: body.base64 }) }
}

/** Nodes that did not answer are worth a line; an empty list is not. */
const withMissing = (missing: ReadonlyArray<typeof Capture.Missing.Type>) =>
  missing.length === 0 ? {} : { missing }

const endpointPath = (endpointId: string) => `/status/proxy/endpoints/${encodeURIComponent(endpointId)}`

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
  proxyRequests: (endpointId: string) =>
    query({
      what: `requests of ${endpointId}`,
      path: `${endpointPath(endpointId)}/requests`,
      schema: Capture.ExchangeList,
      shape: ({ exchanges, missing }) => ({ requests: exchanges, ...withMissing(missing) }),
    }),
  proxyRequest: (requestId: string) =>
    query({
      what: `request ${requestId}`,
      path: `/status/proxy/requests/${encodeURIComponent(requestId)}`,
      schema: Capture.ExchangeDetail,
      shape: (exchange) => ({
        ...exchange,
        request: { ...exchange.request, body: readableBody(exchange.request.body) },
        response:
          exchange.response === null
            ? null
            : { ...exchange.response, body: readableBody(exchange.response.body) },
      }),
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

/**
 * `pico status proxy requests <endpoint> --follow`: prints each exchange of the endpoint as it finishes anywhere
 * in the cluster, until interrupted: a YAML sequence item (or a JSON line) per exchange.
 */
export const followProgram = (
  endpointId: string,
  output: "yaml" | "json",
): Effect.Effect<void, StatusError, StatusClient> =>
  Effect.gen(function* () {
    const client = yield* StatusClient
    const decode = Schema.decodeUnknown(Schema.parseJson(Capture.ExchangeSummary))
    yield* client.events(`${endpointPath(endpointId)}/requests?follow`).pipe(
      Stream.mapEffect((event) => Effect.orDie(decode(event))),
      Stream.runForEach((exchange) =>
        Console.log(
          output === "json"
            ? JSON.stringify(exchange)
            : YAML.stringify([exchange], { indentSeq: false }).trimEnd(),
        ),
      ),
    )
    // Only a node going away ends the stream: say so, so a script can follow again.
    return yield* new StatusError({
      reason: "unreachable",
      message: "the node ended the stream (shutting down?)",
    })
  })

/** `pico capture start|stop <endpoint>`: turns the endpoint's capture on or off on every node. */
export const captureProgram = (
  endpointId: string,
  action: "start" | "stop",
  output: "yaml" | "json",
): Effect.Effect<void, StatusError, StatusClient> =>
  Effect.gen(function* () {
    const client = yield* StatusClient
    const state = yield* client.send(
      action === "start" ? "PUT" : "DELETE",
      `${endpointPath(endpointId)}/capture`,
      undefined,
      Capture.CaptureState,
    )
    const { missing, ...capturing } = state
    yield* Console.log(format({ ...capturing, ...withMissing(missing) }, output))
  })

/** `pico replay <rid>`: sends a captured request again, wherever in the cluster it was captured. */
export const replayProgram = (
  requestId: string,
  edits: Capture.ReplayEdits,
  output: "yaml" | "json",
): Effect.Effect<void, StatusError, StatusClient> =>
  Effect.gen(function* () {
    const client = yield* StatusClient
    const captured = yield* client.get(
      `/status/proxy/requests/${encodeURIComponent(requestId)}`,
      Capture.ExchangeDetail,
    )
    const result = yield* client.send(
      "POST",
      `${endpointPath(captured.endpoint)}/requests/${encodeURIComponent(requestId)}/replay`,
      edits,
      Capture.ReplayResult,
    )
    yield* Console.log(format({ ...result, body: readableBody(result.body) }, output))
  })
