import { randomUUID } from "node:crypto"
import * as http from "node:http"
import { duplexPair } from "node:stream"
import { Effect, Schema } from "effect"
import type { ReplayEdits, ReplayResult } from "../Domain/Capture.js"
import { replayHeader } from "../Proxy/Headers.js"
import { requestIdHeader } from "../Proxy/RequestId.js"
import { ProxyHandler } from "../Proxy.js"
import { BodyPrefix, type Recording, redactedValue } from "./Recording.js"

/** Why a captured exchange cannot be sent again as it is. */
export class ReplayError extends Schema.TaggedError<ReplayError>()("ReplayError", {
  reason: Schema.Literal("upgrade", "body not captured whole", "invalid edits", "failed"),
  message: Schema.String,
}) {}

/**
 * Headers a replay sets itself, or that describe the original connection rather than the request: the client's
 * X-Forwarded-For had its address appended by the proxy, which a replay, made in process, has none to append.
 */
const notReplayed = new Set([
  "x-forwarded-for",
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "expect",
  "content-length",
  requestIdHeader,
  replayHeader,
])

/**
 * The captured head with the edits applied: a header edited to null is removed, one edited to a string replaced
 * (all its occurrences) or added. A redacted header is left out unless the edits give it again: its value was
 * never kept.
 */
const replayHeaders = (
  recording: Recording,
  edits: ReplayEdits,
  body: Buffer,
  requestId: string,
): Array<string> => {
  const changed = new Map(
    Object.entries(edits.headers ?? {}).map(([name, value]) => [name.toLowerCase(), value]),
  )
  const out: Array<string> = []
  for (const [name, value] of recording.request.headers) {
    const lower = name.toLowerCase()
    if (notReplayed.has(lower) || changed.has(lower) || value === redactedValue) continue
    out.push(name, value)
  }
  for (const [name, value] of changed) if (value !== null && !notReplayed.has(name)) out.push(name, value)
  out.push("X-Request-Id", requestId, "X-Pico-Replay", recording.id)
  if (body.length > 0 || recording.request.headers.some(([name]) => name.toLowerCase() === "content-length"))
    out.push("Content-Length", String(body.length))
  return out
}

/**
 * Sends captured requests again through this node's proxy, as a client would, but over an in-memory connection
 * handed to the proxy's own handler: the replay is routed, authorized (a proxy token, when the proxy requires
 * one, must come with the edits: the captured one was redacted), logged and captured like any request, marked
 * with `x-pico-replay`. The answer keeps the first `bodyBytes` of the response body.
 */
export const makeReplay = (nodeId: string, bodyBytes: number) =>
  Effect.gen(function* () {
    const proxy = yield* ProxyHandler
    // Never listens: connections are handed to it. It only runs the proxy's handler.
    const server = http.createServer(proxy.handleReplay)
    yield* Effect.addFinalizer(() => Effect.sync(() => server.closeAllConnections()))

    return (recording: Recording, edits: ReplayEdits): Effect.Effect<ReplayResult, ReplayError> =>
      Effect.suspend(() => {
        if (recording.status === 101)
          return Effect.fail(
            new ReplayError({ reason: "upgrade", message: "a WebSocket handshake cannot be replayed" }),
          )
        const body =
          edits.body_base64 === undefined
            ? recording.wholeRequestBody()
            : Buffer.from(edits.body_base64, "base64")
        if (body === undefined)
          return Effect.fail(
            new ReplayError({
              reason: "body not captured whole",
              message: `only the first ${recording.requestBody.kept} bytes of the ${recording.requestBody.size}-byte body were captured: give the body to send`,
            }),
          )
        const requestId = randomUUID()
        return Effect.async<ReplayResult, ReplayError>((resume) => {
          const [client, serverSide] = duplexPair()
          let req: http.ClientRequest
          try {
            req = http.request({
              method: recording.method,
              path: recording.path,
              headers: replayHeaders(recording, edits, body, requestId),
              createConnection: () => client,
            })
          } catch (error) {
            // Node checks names and values as it builds the head: an edit such as "bad name" or a CR LF in a value.
            return resume(
              Effect.fail(new ReplayError({ reason: "invalid edits", message: (error as Error).message })),
            )
          }
          server.emit("connection", serverSide)
          req.on("response", (res) => {
            const kept = new BodyPrefix(bodyBytes)
            let answered = false
            const answer = () => {
              if (answered) return
              answered = true
              kept.seal()
              resume(
                Effect.succeed({
                  request_id: requestId,
                  replay_of: recording.id,
                  node: nodeId,
                  status: res.statusCode ?? 0,
                  headers: pairs(res.rawHeaders),
                  body: kept.toJSON(),
                }),
              )
              req.destroy()
            }
            // Only the first bytes are kept: an endless response (a stream) is cut once they have arrived.
            res.on("data", (chunk: Buffer) => {
              kept.add(chunk)
              if (kept.full) answer()
            })
            res.on("end", answer)
            res.on("error", answer)
          })
          req.on("error", (error) =>
            resume(Effect.fail(new ReplayError({ reason: "failed", message: error.message }))),
          )
          req.end(body)
          return Effect.sync(() => req.destroy())
        })
      })
  })

const pairs = (raw: ReadonlyArray<string>): Array<readonly [string, string]> => {
  const out: Array<readonly [string, string]> = []
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i] as string, raw[i + 1] as string])
  return out
}
