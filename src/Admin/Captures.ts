import type * as http from "node:http"
import { Effect, Queue, Runtime, Schedule, Schema, Stream } from "effect"
import * as Capture from "../Domain/Capture.js"
import { isValidEndpointId } from "../Domain/EndpointId.js"
import { makeReplay, type ReplayError } from "../Inspector/Replay.js"
import { Inspector } from "../Inspector.js"
import {
  type AdminResponse,
  type Handler,
  json,
  jsonError,
  type StreamedResponse,
  streamHeaders,
} from "../internal/Router.js"
import { forwardHeader } from "../Proxy/PeerProof.js"
import { Registry } from "../Registry.js"
import type { Peers } from "./Peers.js"

const invalidEndpoint = jsonError(400, "invalid endpoint id")
const notCaptured = jsonError(404, "request not found: not captured, or no longer kept")

/** How often an event stream says it is still there, so balancers on the way keep it open. */
const KEEP_ALIVE = "15 seconds"
/** How often a cluster-wide event stream looks for peers it is not following yet (new, or back). */
const PEER_SCAN = "5 seconds"
/**
 * Events a follower may fall behind by, beyond what its connection holds: past that the oldest are dropped. A
 * summary can carry a 16 KiB path, so this bounds a follower that does not read to a few MiB.
 */
const FOLLOW_BACKLOG = 256

/** The most a replay's edits (JSON, the body in base64) may weigh. */
const MAX_EDITS_BYTES = 8 * 1024 * 1024

/** A replay that cannot run: the edits are the caller's mistake (400), the rest the capture's state or the route's. */
const replayErrorStatus: Record<ReplayError["reason"], number> = {
  "invalid edits": 400,
  upgrade: 409,
  "body not captured whole": 409,
  failed: 502,
}

/** A request a peer sent to gather its cluster-wide answer: this node answers for itself alone. */
const fromPeer = (req: http.IncomingMessage) => req.headers[forwardHeader] !== undefined

const newestFirst = (a: Capture.ExchangeSummary, b: Capture.ExchangeSummary) =>
  a.started < b.started ? 1 : a.started > b.started ? -1 : 0

const decode = <A, I>(schema: Schema.Schema<A, I>, body: Buffer) =>
  Schema.decodeUnknown(Schema.parseJson(schema))(body.toString("utf8")).pipe(
    Effect.mapError((error) => `unexpected answer: ${error.message}`),
  )

/** Reads a request body (a replay's edits: small, capped). */
const readBody = (req: http.IncomingMessage, limit: number) =>
  Effect.async<Buffer, string>((resume) => {
    const chunks: Array<Buffer> = []
    let size = 0
    req.on("data", (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        resume(Effect.fail(`request body over ${limit} bytes`))
        req.destroy()
      } else chunks.push(chunk)
    })
    req.on("end", () => resume(Effect.succeed(Buffer.concat(chunks))))
    req.on("error", (error) => resume(Effect.fail(error.message)))
  })

/**
 * The capture API: start and stop capturing an endpoint, list and show its exchanges, follow new ones as an event
 * stream, replay one. Every route answers for the whole cluster, asking the active peers (see Peers); a peer's own
 * request (marked x-pico-forward) gets this node's part alone.
 */
export const makeCaptureRoutes = (peers: Peers, bodyBytes: number) =>
  Effect.gen(function* () {
    const inspector = yield* Inspector
    const registry = yield* Registry
    const { nodeId } = inspector
    const replay = yield* makeReplay(nodeId, bodyBytes)
    const path = (endpointId: string, rest = "") =>
      `/status/proxy/endpoints/${encodeURIComponent(endpointId)}${rest}`

    // --- Capture on and off ---

    const localState = (endpointId: string): Capture.CaptureState => {
      const on = inspector.capturing().includes(endpointId)
      return { endpoint: endpointId, capturing: on ? [nodeId] : [], idle: on ? [] : [nodeId], missing: [] }
    }
    const captureState = (req: http.IncomingMessage, endpointId: string, method: string) =>
      Effect.gen(function* () {
        if (fromPeer(req)) return json(200, localState(endpointId))
        const gathered = yield* peers.gather(
          Effect.sync(() => localState(endpointId)),
          (node) =>
            peers
              .ask(node, method, path(endpointId, "/capture"), req)
              .pipe(
                Effect.flatMap((answer) =>
                  answer.status === 200
                    ? decode(Capture.CaptureState, answer.body)
                    : Effect.fail(`status ${answer.status}: ${answer.body.toString("utf8")}`),
                ),
              ),
        )
        const state: Capture.CaptureState = {
          endpoint: endpointId,
          capturing: gathered.answers.flatMap((answer) => answer.capturing).sort(),
          idle: gathered.answers.flatMap((answer) => answer.idle).sort(),
          missing: gathered.missing,
        }
        return json(200, state)
      })

    const withEndpoint =
      (
        handle: (
          endpointId: string,
          req: http.IncomingMessage,
          params: ReadonlyArray<string>,
        ) => ReturnType<Handler>,
      ): Handler =>
      ({ req, params }) => {
        const endpointId = params[0] ?? ""
        return isValidEndpointId(endpointId)
          ? handle(endpointId, req, params)
          : Effect.succeed(invalidEndpoint)
      }

    // --- Lists and details ---

    const localList = (endpointId: string): Capture.ExchangeList => ({
      exchanges: (inspector.captureOf(endpointId)?.newestFirst() ?? []).map((recording) =>
        recording.summary(),
      ),
      missing: [],
    })

    const list = (req: http.IncomingMessage, endpointId: string) =>
      Effect.gen(function* () {
        if (fromPeer(req)) return json(200, localList(endpointId))
        const gathered = yield* peers.gather(
          Effect.sync(() => localList(endpointId)),
          (node) =>
            peers
              .ask(node, "GET", path(endpointId, "/requests"), req)
              .pipe(
                Effect.flatMap((answer) =>
                  answer.status === 200
                    ? decode(Capture.ExchangeList, answer.body)
                    : Effect.fail(`status ${answer.status}`),
                ),
              ),
        )
        return json(200, {
          exchanges: gathered.answers.flatMap((answer) => answer.exchanges).sort(newestFirst),
          missing: gathered.missing,
        } satisfies Capture.ExchangeList)
      })

    /** The node holding a request id and its answer for it, looking here first, then at every peer. */
    const locate = (req: http.IncomingMessage, requestId: string, endpointId: string | undefined) =>
      Effect.gen(function* () {
        const here = inspector.find(requestId, endpointId)
        if (here !== undefined || fromPeer(req))
          return here === undefined ? undefined : { detail: here.detail() }
        const route =
          endpointId === undefined
            ? `/status/proxy/requests/${encodeURIComponent(requestId)}`
            : path(endpointId, `/requests/${encodeURIComponent(requestId)}`)
        const found = yield* Effect.firstSuccessOf([
          ...(yield* peers.active).map((node) =>
            peers.ask(node, "GET", route, req).pipe(
              Effect.flatMap((answer) =>
                answer.status === 200
                  ? decode(Capture.ExchangeDetail, answer.body)
                  : Effect.fail("not there"),
              ),
              Effect.map((detail) => ({ detail, node })),
            ),
          ),
          Effect.fail("nowhere"),
        ]).pipe(Effect.option)
        return found._tag === "Some" ? found.value : undefined
      })

    const detail = (req: http.IncomingMessage, requestId: string, endpointId?: string) =>
      Effect.map(locate(req, requestId, endpointId), (found) =>
        found === undefined ? notCaptured : json(200, found.detail),
      )

    // --- Replay ---

    const replayOn = (req: http.IncomingMessage, endpointId: string, requestId: string) =>
      Effect.gen(function* () {
        const body = yield* readBody(req, MAX_EDITS_BYTES).pipe(Effect.either)
        if (body._tag === "Left") return jsonError(413, body.left)
        const edits = yield* Schema.decodeUnknown(Schema.parseJson(Capture.ReplayEdits))(
          body.right.length === 0 ? "{}" : body.right.toString("utf8"),
        ).pipe(Effect.either)
        if (edits._tag === "Left") return jsonError(400, `invalid replay edits: ${edits.left.message}`)
        const recording = inspector.find(requestId, endpointId)
        if (recording !== undefined)
          return yield* replay(recording, edits.right).pipe(
            Effect.match({
              onFailure: (error) => jsonError(replayErrorStatus[error.reason], error.message),
              onSuccess: (result) => json(200, result),
            }),
          )
        if (fromPeer(req)) return notCaptured
        // Held by another node: the replay runs there, where the captured request is.
        const found = yield* locate(req, requestId, endpointId)
        if (found === undefined || !("node" in found)) return notCaptured
        const answer = yield* peers
          .ask(
            found.node,
            "POST",
            path(endpointId, `/requests/${encodeURIComponent(requestId)}/replay`),
            req,
            body.right,
          )
          .pipe(Effect.either)
        return answer._tag === "Left"
          ? jsonError(502, `node ${found.node.id} unreachable: ${answer.left}`)
          : ({
              status: answer.right.status,
              body: answer.right.body,
              contentType: "application/json",
            } satisfies AdminResponse)
      })

    // --- Following new exchanges ---

    /**
     * Pushes each exchange of the endpoint that finishes, here and (unless a peer asks) on every active peer,
     * as server-sent events (`data: <summary JSON>`), until the client goes away. A peer that fails, or joins
     * later, is followed from the next scan on.
     */
    const follow = (req: http.IncomingMessage, endpointId: string): StreamedResponse => ({
      stream: (res) =>
        Effect.scoped(
          Effect.gen(function* () {
            const events = yield* Queue.sliding<string>(FOLLOW_BACKLOG)
            // Offered as an effect, on this stream's runtime: a full sliding queue drops its oldest only then
            // (unsafeOffer drops the new one).
            const runSync = Runtime.runSync(yield* Effect.runtime<never>())
            yield* inspector.subscribe(endpointId, (summary) =>
              runSync(Queue.offer(events, JSON.stringify(summary))),
            )
            res.writeHead(200, streamHeaders)
            res.write(": following\n\n")
            if (!fromPeer(req)) {
              const followed = new Set<string>()
              const followPeers = Effect.gen(function* () {
                for (const node of yield* peers.active) {
                  if (followed.has(node.id)) continue
                  followed.add(node.id)
                  yield* peers.events(node, `${path(endpointId, "/requests")}?follow`, req).pipe(
                    Stream.runForEach((event) => Queue.offer(events, event)),
                    Effect.ignore,
                    Effect.ensuring(Effect.sync(() => followed.delete(node.id))),
                    Effect.forkScoped,
                  )
                }
              })
              yield* followPeers.pipe(Effect.repeat(Schedule.spaced(PEER_SCAN)), Effect.forkScoped)
            }
            const closed = Effect.async<void>((resume) => {
              if (res.destroyed) return resume(Effect.void)
              res.once("close", () => resume(Effect.void))
            })
            // Nothing more is written while the connection holds what the client has not read: the backlog drops
            // the oldest events instead, so a follower that stops reading holds no more than that.
            const drained = Effect.async<void>((resume) => {
              // The fiber may have yielded since the write: a drain that came meanwhile is not waited for again.
              if (!res.writableNeedDrain || res.destroyed) return resume(Effect.void)
              const done = () => resume(Effect.void)
              res.once("drain", done)
              res.once("close", done)
              return Effect.sync(() => {
                res.off("drain", done)
                res.off("close", done)
              })
            })
            const relay = Queue.take(events).pipe(
              Effect.flatMap((event) => (res.write(`data: ${event}\n\n`) ? Effect.void : drained)),
              Effect.forever,
            )
            const keepAlive = Effect.sleep(KEEP_ALIVE).pipe(
              Effect.map(() => res.write(": keep-alive\n\n")),
              Effect.forever,
            )
            yield* Effect.raceFirst(closed, Effect.zipRight(Effect.fork(keepAlive), relay))
          }),
        ).pipe(
          // Also when the node shuts down: the client sees the stream end and can reconnect elsewhere.
          Effect.ensuring(Effect.sync(() => res.end())),
        ),
    })

    // --- Traffic ---

    const localTraffic = Effect.gen(function* () {
      const endpoints = yield* registry.localEndpoints
      const { requests, served } = inspector.traffic()
      const traffic: Capture.NodeTraffic = {
        node: nodeId,
        requests,
        endpoints: Object.fromEntries(
          [...endpoints]
            .sort(([a], [b]) => (a < b ? -1 : 1))
            .map(([endpointId, upstreams]) => [
              endpointId,
              {
                upstreams: upstreams.map((upstream) => upstream.remoteAddr),
                requests: served.get(endpointId) ?? 0,
              },
            ]),
        ),
      }
      return traffic
    })

    const routes: Record<string, Handler> = {
      "/status/proxy/endpoints/:id/capture": withEndpoint((endpointId, req) =>
        captureState(req, endpointId, "GET"),
      ),
      "PUT /status/proxy/endpoints/:id/capture": withEndpoint((endpointId, req) =>
        Effect.zipRight(inspector.start(endpointId), captureState(req, endpointId, "PUT")),
      ),
      "DELETE /status/proxy/endpoints/:id/capture": withEndpoint((endpointId, req) =>
        Effect.zipRight(inspector.stop(endpointId), captureState(req, endpointId, "DELETE")),
      ),
      "/status/proxy/endpoints/:id/requests": ({ req, params, query }) =>
        withEndpoint((endpointId) =>
          query.has("follow") ? Effect.succeed(follow(req, endpointId)) : list(req, endpointId),
        )({
          req,
          params,
          query,
        }),
      "/status/proxy/endpoints/:id/requests/:rid": withEndpoint((endpointId, req, [, requestId = ""]) =>
        detail(req, requestId, endpointId),
      ),
      "POST /status/proxy/endpoints/:id/requests/:rid/replay": withEndpoint(
        (endpointId, req, [, requestId = ""]) => replayOn(req, endpointId, requestId),
      ),
      "/status/proxy/requests/:rid": ({ req, params: [requestId = ""] }) => detail(req, requestId),
      "/status/proxy/traffic": ({ req }) =>
        fromPeer(req)
          ? Effect.map(localTraffic, (traffic) => json(200, { nodes: [traffic], missing: [] }))
          : Effect.map(
              peers.gather(localTraffic, (node) =>
                peers.ask(node, "GET", "/status/proxy/traffic", req).pipe(
                  Effect.flatMap((answer) =>
                    answer.status === 200
                      ? decode(Capture.ClusterTraffic, answer.body)
                      : Effect.fail(`status ${answer.status}`),
                  ),
                  Effect.flatMap((cluster) =>
                    cluster.nodes[0] === undefined
                      ? Effect.fail("no answer")
                      : Effect.succeed(cluster.nodes[0]),
                  ),
                ),
              ),
              (gathered) =>
                json(200, {
                  nodes: gathered.answers.sort((a, b) => (a.node < b.node ? -1 : 1)),
                  missing: gathered.missing,
                } satisfies Capture.ClusterTraffic),
            ),
    }
    return routes
  })
