import type * as http from "node:http"
import { Effect } from "effect"
import { errorBody } from "./JsonResponse.js"

/** An admin answer, whole: status pages are small, so they are built before anything is written. */
export interface AdminResponse {
  readonly status: number
  readonly body: Buffer
  readonly contentType: string
  readonly headers?: Readonly<Record<string, string>>
}

/** An answer that writes itself as it goes (an event stream), for as long as the client stays. */
export interface StreamedResponse {
  readonly stream: (res: http.ServerResponse) => Effect.Effect<void>
}

/** What a route is given: the request, the values of its ":name" segments in order, and the query. */
export interface AdminRequest {
  readonly req: http.IncomingMessage
  readonly params: ReadonlyArray<string>
  readonly query: URLSearchParams
}

export type Handler = (request: AdminRequest) => Effect.Effect<AdminResponse | StreamedResponse>

export const json = (status: number, value: unknown): AdminResponse => ({
  status,
  body: Buffer.from(JSON.stringify(value)),
  contentType: "application/json",
})

export const jsonError = (status: number, message: string): AdminResponse => ({
  status,
  body: errorBody(message),
  contentType: "application/json",
})

export const notFound = jsonError(404, "not found")

/**
 * Marks every admin answer as one: the upstream port's 404 is the same `{"error":"not found"}`, and an agent
 * pointed at an admin port by mistake tells the two apart by this header to say which port it reached.
 */
export const adminHeader = "x-pico-admin"

/**
 * Marks the upstream port's answers to a path other than its tunnels' (`/pico/v1/listener/<id>`): an agent whose
 * --server.url has a path no proxy in front strips learns it reached the right port at the wrong path.
 */
export const upstreamHeader = "x-pico-upstream"

export const write = (res: http.ServerResponse, response: AdminResponse): void => {
  res.writeHead(response.status, {
    ...response.headers,
    "content-type": response.contentType,
    "content-length": response.body.length,
    [adminHeader]: "1",
  })
  res.end(response.body)
}

/** Headers for an answer written as it goes: never cached or buffered by a proxy on the way. */
export const streamHeaders = {
  "content-type": "text/event-stream",
  "cache-control": "no-store",
  "x-accel-buffering": "no",
  [adminHeader]: "1",
}

interface Route {
  readonly method: string
  /** Literal segments, or undefined where a ":name" segment takes any one non-empty segment. */
  readonly segments: ReadonlyArray<string | undefined>
  readonly handler: Handler
}

const parseRoute = (key: string, handler: Handler): Route => {
  const [method, pattern] = key.includes(" ") ? (key.split(" ") as [string, string]) : ["GET", key]
  return {
    method,
    segments: pattern.split("/").map((segment) => (segment.startsWith(":") ? undefined : segment)),
    handler,
  }
}

/** The decoded ":name" values of `route` for `segments`, or undefined when the path is not the route's. */
const match = (route: Route, segments: ReadonlyArray<string>): Array<string> | undefined => {
  if (route.segments.length !== segments.length) return undefined
  const params: Array<string> = []
  for (const [i, expected] of route.segments.entries()) {
    const segment = segments[i] as string
    if (expected === undefined) {
      if (segment === "") return undefined
      try {
        params.push(decodeURIComponent(segment))
      } catch {
        // Malformed percent-encoding names nothing that exists.
        return undefined
      }
    } else if (expected !== segment) return undefined
  }
  return params
}

/**
 * Answers requests from `routes`, keyed "METHOD /path" ("/path" alone is GET, which also answers HEAD), where a
 * ":name" segment matches any one non-empty segment ("/status/gossip/nodes/:id"). An unknown path is 404, a known
 * path asked with another method 405.
 */
export const makeRouter = (
  routes: Readonly<Record<string, Handler>>,
): ((
  req: http.IncomingMessage,
  res: http.ServerResponse,
  path: string,
  query?: URLSearchParams,
) => Effect.Effect<void>) => {
  const table = Object.entries(routes).map(([key, handler]) => parseRoute(key, handler))
  return (req, res, path, query = new URLSearchParams()) => {
    const segments = path.split("/")
    const method = req.method === "HEAD" ? "GET" : (req.method ?? "")
    let pathKnown = false
    for (const route of table) {
      const params = match(route, segments)
      if (params === undefined) continue
      pathKnown = true
      if (route.method !== method) continue
      return Effect.flatMap(route.handler({ req, params, query }), (response) =>
        "stream" in response ? response.stream(res) : Effect.sync(() => write(res, response)),
      )
    }
    return Effect.sync(() => write(res, pathKnown ? jsonError(405, "method not allowed") : notFound))
  }
}
