import type * as http from "node:http"
import { Effect } from "effect"
import { errorBody } from "./JsonResponse.js"

/** An admin answer, whole: status pages are small, so they are built before anything is written. */
export interface AdminResponse {
  readonly status: number
  readonly body: Buffer
  readonly contentType: string
}

/** Answers one route; `param` is the last path segment of a "/:id" route, "" for the others. */
export type Handler = (param: string) => Effect.Effect<AdminResponse>

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

export const write = (res: http.ServerResponse, response: AdminResponse): void => {
  res.writeHead(response.status, {
    "content-type": response.contentType,
    "content-length": response.body.length,
    [adminHeader]: "1",
  })
  res.end(response.body)
}

const paramSuffix = "/:id"

/**
 * Answers GET and HEAD requests from `routes`, 404 otherwise. A path matches an exact route
 * ("/status/gossip/nodes") or a route ending in "/:id" whose prefix matches and whose last segment is one
 * non-empty segment ("/status/gossip/nodes/pico-1-abcdefg").
 */
export const makeRouter = (
  routes: Readonly<Record<string, Handler>>,
): ((req: http.IncomingMessage, res: http.ServerResponse, path: string) => Effect.Effect<void>) => {
  const exact = new Map<string, Handler>()
  const prefixed = new Map<string, Handler>()
  for (const [pattern, handler] of Object.entries(routes)) {
    if (pattern.endsWith(paramSuffix)) prefixed.set(pattern.slice(0, -paramSuffix.length + 1), handler)
    else exact.set(pattern, handler)
  }
  const find = (path: string): Effect.Effect<AdminResponse> | undefined => {
    const handler = exact.get(path)
    if (handler !== undefined) return handler("")
    const slash = path.lastIndexOf("/")
    const param = path.slice(slash + 1)
    const withParam = prefixed.get(path.slice(0, slash + 1))
    if (withParam === undefined || param === "") return undefined
    try {
      return withParam(decodeURIComponent(param))
    } catch {
      // Malformed percent-encoding names nothing that exists.
      return undefined
    }
  }
  return (req, res, path) => {
    const response = req.method === "GET" || req.method === "HEAD" ? find(path) : undefined
    return response === undefined
      ? Effect.sync(() => write(res, notFound))
      : Effect.map(response, (done) => write(res, done))
  }
}
