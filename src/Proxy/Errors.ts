import type * as http from "node:http"
import type { Duplex } from "node:stream"
import { Schema } from "effect"
import { errorBody, writeJson, writeJsonToSocket } from "../internal/JsonResponse.js"

/** Why the proxy answered a request itself instead of with an upstream's response. */
export const ProxyFailure = Schema.Literal(
  "missing pico endpoint id",
  "endpoint not found",
  "upstream unreachable",
  "endpoint timeout",
)
export type ProxyFailure = typeof ProxyFailure.Type

export class ProxyError extends Schema.TaggedError<ProxyError>()("ProxyError", {
  reason: ProxyFailure,
  /** Extra context for the log line; never sent to the client. */
  detail: Schema.optional(Schema.String),
}) {}

interface ErrorResponse {
  readonly status: number
  readonly body: Buffer
}

const statuses: Record<ProxyFailure, number> = {
  "missing pico endpoint id": 400,
  "endpoint not found": 503,
  "upstream unreachable": 502,
  "endpoint timeout": 504,
}

/** The one place proxy failures become HTTP statuses and JSON bodies (precomputed: they are sent on hot paths). */
const responses = Object.fromEntries(
  ProxyFailure.literals.map((reason) => [reason, { status: statuses[reason], body: errorBody(reason) }]),
) as Record<ProxyFailure, ErrorResponse>

/** Answers on a normal HTTP exchange; a response already under way can only be cut. */
export const writeError = (res: http.ServerResponse, reason: ProxyFailure): void => {
  if (res.headersSent) res.destroy()
  else writeJson(res, responses[reason].status, responses[reason].body)
}

/** Answers on a raw socket, for upgrade requests that never reached an upstream. */
export const writeErrorToSocket = (socket: Duplex, reason: ProxyFailure): void =>
  writeJsonToSocket(socket, responses[reason].status, responses[reason].body)
