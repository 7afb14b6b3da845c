import type * as http from "node:http"
import { Schema } from "effect"
import { type AuthError, AuthFailureReason } from "../Auth.js"
import { tcpUpgradeToken } from "../Domain/EndpointKind.js"
import { errorBody, writeJson } from "../internal/JsonResponse.js"

/** Pico's own error responses carry their reason in this header, which is how a node tells a stale route from an upstream's own 503. */
export const picoErrorHeader = "x-pico-error"

/** Why the proxy answered a request itself instead of with an upstream's response. */
export const ProxyFailure = Schema.Literal(
  "missing pico endpoint id",
  "invalid endpoint id",
  "invalid request target",
  "duplicate host header",
  "unsupported transfer coding",
  "invalid transfer encoding",
  "unsupported upgrade",
  "endpoint is tcp",
  "endpoint is http",
  "request body timeout",
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
  /** Marks the answer as Pico's own (see picoErrorHeader), not an upstream's. */
  readonly headers: Readonly<Record<string, string>>
}

const statuses: Record<ProxyFailure, number> = {
  "missing pico endpoint id": 400,
  "invalid endpoint id": 400,
  "invalid request target": 400,
  "duplicate host header": 400,
  // A coding such as gzip under the chunked one (RFC 9112 §6.1): Pico decodes chunked only.
  "unsupported transfer coding": 501,
  // Codings that do not end with chunked: the body's length cannot be known (RFC 9112 §6.3).
  "invalid transfer encoding": 400,
  "unsupported upgrade": 400,
  // An HTTP request (or WebSocket) for a TCP endpoint: the client must upgrade to pico-tcp (RFC 9110 §15.5.22).
  "endpoint is tcp": 426,
  // A TCP connection asked of an HTTP endpoint.
  "endpoint is http": 400,
  "request body timeout": 408,
  "endpoint not found": 503,
  "upstream unreachable": 502,
  "endpoint timeout": 504,
}

/** A 426 must name the protocol to upgrade to. */
const extraHeaders: Partial<Record<ProxyFailure, Readonly<Record<string, string>>>> = {
  "endpoint is tcp": { upgrade: tcpUpgradeToken },
}

const errorResponse = (status: number, reason: string): ErrorResponse => ({
  status,
  body: errorBody(reason),
  headers: { [picoErrorHeader]: reason, ...extraHeaders[reason as ProxyFailure] },
})

/** Why a request whose Transfer-Encoding is not `chunked` alone is refused: Pico decodes chunked only. */
export const transferCodingError = (codings: string): ProxyError =>
  new ProxyError({
    reason: /(^|,)[ \t]*chunked[ \t]*$/i.test(codings)
      ? "unsupported transfer coding"
      : "invalid transfer encoding",
    detail: codings,
  })

/** Precomputes the answer for every reason: they are sent on hot paths. */
const answers = <R extends string>(
  reasons: ReadonlyArray<R>,
  status: (reason: R) => number,
): Record<R, ErrorResponse> => {
  const table = {} as Record<R, ErrorResponse>
  for (const reason of reasons) table[reason] = errorResponse(status(reason), reason)
  return table
}

/** The one place proxy failures become HTTP statuses and JSON bodies. */
const responses = answers(ProxyFailure.literals, (reason) => statuses[reason])
const authResponses = answers(AuthFailureReason.literals, () => 401)

const responseFor = (error: ProxyError | AuthError): ErrorResponse =>
  error._tag === "AuthError" ? authResponses[error.reason] : responses[error.reason]

const unframed: ReadonlySet<string> = new Set<ProxyFailure>([
  "unsupported transfer coding",
  "invalid transfer encoding",
])

/**
 * After these, what else the client sent on the connection cannot be framed: the connection is closed after the
 * answer, and a request parsed from behind it must not be served.
 */
export const closesConnection = (error: ProxyError | AuthError): boolean => unframed.has(error.reason)

/**
 * Answers on a normal HTTP exchange, and says how many body bytes that sent; a response already under way can
 * only be cut (none).
 */
export const writeError = (res: http.ServerResponse, error: ProxyError | AuthError): number => {
  if (res.headersSent) {
    res.destroy()
    return 0
  }
  if (closesConnection(error)) res.shouldKeepAlive = false
  const { status, body, headers } = responseFor(error)
  writeJson(res, status, body, headers)
  return body.length
}
