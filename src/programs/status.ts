import { Console, Effect, Schema, Stream } from "effect"
import YAML from "yaml"
import * as Capture from "../Domain/Capture.js"
import * as Status from "../Domain/Status.js"
import { StatusClient, StatusError } from "../Status.js"

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
  proxyRequests: (endpointId: string) =>
    query({
      what: `requests of ${endpointId}`,
      ask: route(`${endpointPath(endpointId)}/requests`, Capture.ExchangeList),
      shape: ({ exchanges, missing }) => ({ requests: exchanges, ...withMissing(missing) }),
    }),
  proxyRequest: (requestId: string) =>
    query({
      what: `request ${requestId}`,
      ask: route(`/status/proxy/requests/${encodeURIComponent(requestId)}`, Capture.ExchangeDetail),
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
    const answer = yield* question.ask
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
