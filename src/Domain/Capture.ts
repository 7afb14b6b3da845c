import { Schema } from "effect"

/**
 * The JSON bodies of the capture API (`/status/proxy/endpoints/<id>/requests...`), shared by the server that
 * writes them, `pico status proxy requests` and `pico replay` that read them, and the web console.
 */

/** Headers a capture never keeps the value of, whatever `--capture.redact-headers` adds: credentials and cookies. */
export const defaultRedactedHeaders: ReadonlyArray<string> = [
  "authorization",
  "proxy-authorization",
  "cookie",
  "set-cookie",
  "x-pico-authorization",
  "x-api-key",
]

/** A header as it arrived, `[name, value]`, in order; a redacted header's value is "(redacted)". */
export const Header = Schema.Tuple(Schema.String, Schema.String)

/** The first bytes of a body. */
export const CapturedBody = Schema.Struct({
  /** Bytes the body had in all (as far as it went: an exchange cut short has a short body). */
  size: Schema.Int,
  /** The bytes kept (the first --capture.body-kib KiB), base64. */
  base64: Schema.String,
  /** Whether bytes past the kept ones were left out. */
  truncated: Schema.Boolean,
})
export type CapturedBody = typeof CapturedBody.Type

/** One exchange in a list: enough to pick it out. */
export const ExchangeSummary = Schema.Struct({
  /** The request's x-request-id (kept from the client or generated), which is also its access log line's. */
  id: Schema.String,
  /** The node that took the client's request and captured it. */
  node: Schema.String,
  endpoint: Schema.String,
  /** When the request arrived (RFC 3339). */
  started: Schema.String,
  method: Schema.String,
  /** The request target, query included. */
  path: Schema.String,
  /** The status the client got; null while in flight; 499: the client went away before any response. */
  status: Schema.NullOr(Schema.Int),
  duration_ms: Schema.NullOr(Schema.Number),
  /** The request id this exchange replayed, for a replay. */
  replay_of: Schema.optional(Schema.String),
})
export type ExchangeSummary = typeof ExchangeSummary.Type

export const CapturedRequest = Schema.Struct({
  method: Schema.String,
  path: Schema.String,
  http_version: Schema.String,
  headers: Schema.Array(Header),
  /** Whether headers past the capture's 16 KiB per head were left out. */
  headers_truncated: Schema.Boolean,
  body: CapturedBody,
})

export const CapturedResponse = Schema.Struct({
  status: Schema.Int,
  status_message: Schema.String,
  headers: Schema.Array(Header),
  headers_truncated: Schema.Boolean,
  body: CapturedBody,
})

/** `/status/proxy/endpoints/<id>/requests/<rid>`: the whole exchange. */
export const ExchangeDetail = Schema.Struct({
  ...ExchangeSummary.fields,
  request: CapturedRequest,
  /** The upstream's response; null when Pico answered itself (see error) or none came. */
  response: Schema.NullOr(CapturedResponse),
  /** Milliseconds from sending the request to the target that answered until its response head. */
  upstream_ms: Schema.NullOr(Schema.Number),
  /** Where the request went: "local" through an upstream (session: its address), or "forwarded" to a node. */
  upstream: Schema.NullOr(
    Schema.Struct({ route: Schema.Literal("local", "forwarded"), session: Schema.String }),
  ),
  /** Why Pico answered the request itself, if it did ("endpoint not found", ...). */
  error: Schema.optional(Schema.String),
})
export type ExchangeDetail = typeof ExchangeDetail.Type

/** A node that could not be asked for its part of a cluster-wide answer, and why. */
export const Missing = Schema.Struct({ node: Schema.String, error: Schema.String })

/** `/status/proxy/endpoints/<id>/requests`: every node's captured exchanges of the endpoint, newest first. */
export const ExchangeList = Schema.Struct({
  exchanges: Schema.Array(ExchangeSummary),
  /** Nodes that did not answer: the list lacks their exchanges. */
  missing: Schema.Array(Missing),
})
export type ExchangeList = typeof ExchangeList.Type

/** `/status/proxy/endpoints/<id>/capture`: whether each node captures the endpoint. */
export const CaptureState = Schema.Struct({
  endpoint: Schema.String,
  /** Node ids capturing the endpoint. */
  capturing: Schema.Array(Schema.String),
  /** Node ids not capturing it. */
  idle: Schema.Array(Schema.String),
  missing: Schema.Array(Missing),
})
export type CaptureState = typeof CaptureState.Type

/** What a replay may change in the captured request: headers set (a string) or removed (null), a new body. */
export const ReplayEdits = Schema.Struct({
  headers: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.NullOr(Schema.String) })),
  body_base64: Schema.optional(Schema.String),
})
export type ReplayEdits = typeof ReplayEdits.Type

/** The answer to a replay: the new request's id and what the client side got. */
export const ReplayResult = Schema.Struct({
  request_id: Schema.String,
  replay_of: Schema.String,
  node: Schema.String,
  status: Schema.Int,
  headers: Schema.Array(Header),
  body: CapturedBody,
})
export type ReplayResult = typeof ReplayResult.Type

/** `/status/proxy/traffic`: per node, requests taken from clients, and requests served per local endpoint. */
export const NodeTraffic = Schema.Struct({
  node: Schema.String,
  /** Requests this node took from clients (forwarded ones included), since it started. */
  requests: Schema.Int,
  /** Per endpoint with an upstream here: its upstreams' addresses and the requests they served. */
  endpoints: Schema.Record({
    key: Schema.String,
    value: Schema.Struct({ upstreams: Schema.Array(Schema.String), requests: Schema.Int }),
  }),
})
export type NodeTraffic = typeof NodeTraffic.Type

export const ClusterTraffic = Schema.Struct({
  nodes: Schema.Array(NodeTraffic),
  missing: Schema.Array(Missing),
})
export type ClusterTraffic = typeof ClusterTraffic.Type
