import { STATUS_CODES } from "node:http"
import { adminHeader, upstreamHeader } from "../internal/Router.js"
import { withoutCredentials } from "../internal/UrlCredentials.js"
import type { TunnelConnectError } from "../Tunnel.js"

/**
 * Pico's proxy port marks its own error answers with this header (`picoErrorHeader` in Proxy/Errors.ts, not
 * imported: that module would bring the proxy's auth code into the agent).
 */
export const proxyErrorHeader = "x-pico-error"

/** Why the agent gives up instead of retrying. */
export type AgentFailure = "refused" | "not an upstream port"

/** What a failed connect means: try again later, or stop, because no retry can succeed. */
export type ConnectVerdict =
  | { readonly _tag: "Retry" }
  | { readonly _tag: "Stop"; readonly reason: AgentFailure; readonly message: string }

const retry: ConnectVerdict = { _tag: "Retry" }

/** "HTTP 400 Bad Request: missing pico endpoint id", "HTTP 200 OK, text/html", "HTTP 301 Moved Permanently, to …". */
const describeAnswer = (
  status: number,
  headers: Readonly<Record<string, string>>,
  reason: string,
): string => {
  const statusLine = `HTTP ${status} ${STATUS_CODES[status] ?? ""}`.trimEnd()
  // The reason is the server's JSON error when it gave one, else the status line again.
  if (reason !== statusLine) return `${statusLine}: ${reason}`
  const location = headers.location
  if (status >= 300 && status < 400 && location !== undefined) return `${statusLine}, to ${location}`
  const contentType = headers["content-type"]?.split(";")[0]?.trim()
  return contentType === undefined || contentType === "" ? statusLine : `${statusLine}, ${contentType}`
}

/**
 * Judges a failed connect to `serverUrl`. No answer at all (connection refused, a reset, a timeout), the answers
 * of a load balancer or a node that is restarting (5xx, 408, 429) and a kind conflict (409: the endpoint id is
 * connected there as the other kind, by an agent that may leave) are worth retrying. A refusal of our credentials
 * (401, 403) is not, and neither is any other answer: it means --server.url names something other than a node's
 * upstream port, most often Pico's proxy or admin port, which say so in their headers.
 */
export const judgeConnectFailure = (error: TunnelConnectError, serverUrl: string): ConnectVerdict => {
  const { status, headers = {} } = error
  if (status === undefined) return retry
  const wrongPort = (what: string): ConnectVerdict => ({
    _tag: "Stop",
    reason: "not an upstream port",
    message:
      `--server.url ${withoutCredentials(serverUrl)} ${what} (it answered ${describeAnswer(status, headers, error.message)}); ` +
      "it must be a Pico node's upstream port (8001 by default)",
  })
  if (headers[proxyErrorHeader] !== undefined) return wrongPort("is a Pico proxy port")
  if (headers[adminHeader] !== undefined) return wrongPort("is a Pico admin port")
  if (headers[upstreamHeader] !== undefined && status === 404)
    return {
      _tag: "Stop",
      reason: "not an upstream port",
      message:
        `--server.url ${withoutCredentials(serverUrl)} reached a Pico upstream port at the wrong path ` +
        `(it answered ${describeAnswer(status, headers, error.message)}); give the node's URL without a path, ` +
        "or the path a proxy in front of it strips",
    }
  if (status === 401 || status === 403) {
    return { _tag: "Stop", reason: "refused", message: `server refused the connection: ${error.message}` }
  }
  // 409: another agent has the endpoint id as the other kind (HTTP or TCP) on that node; it may leave.
  if (status >= 500 || status === 408 || status === 409 || status === 429) return retry
  return wrongPort("is not a Pico upstream port")
}
