import * as http from "node:http"
import * as https from "node:https"
import { Effect, Option, Stream } from "effect"
import { ClusterKeys } from "../ClusterKeys.js"
import { dialAddress } from "../Domain/Address.js"
import type { Missing } from "../Domain/Capture.js"
import { forwardHeader } from "../Proxy/PeerProof.js"
import { type ClusterNode, Registry } from "../Registry.js"

/** Why a peer's part of a cluster-wide answer is missing; one line for a human. */
export type PeerFailure = string

export const credentialsNeedKey =
  "forwarding credentials needs an authenticated cluster: set --gossip.secret-key on every node"

export interface PeersOptions {
  /** The admin ports serve TLS. */
  readonly tls: boolean
  /** Milliseconds a peer has to answer. */
  readonly timeout: number
  /** This admin port requires a token, so the caller's must go along, and only to real members. */
  readonly requiresToken: boolean
}

/**
 * Kept-alive connections to the peers' admin ports, and whether the cluster key vouches for the peers (only then
 * may a caller's credentials go to them).
 */
export const makePeerConnections = (tls: boolean) =>
  Effect.gen(function* () {
    const keys = yield* Effect.serviceOption(ClusterKeys)
    const agent = tls ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true })
    yield* Effect.addFinalizer(() => Effect.sync(() => agent.destroy()))
    return { agent, authenticatedCluster: Option.isSome(keys) && keys.value.keyring !== undefined }
  })

/** A peer's whole answer. */
export interface PeerAnswer {
  readonly status: number
  readonly body: Buffer
}

/** Collects each node's part of an answer; nodes that failed are listed with the reason. */
export interface Gathered<A> {
  readonly answers: Array<A>
  readonly missing: Array<typeof Missing.Type>
}

/**
 * The admin API's view of the other nodes: every active peer, asked through the admin address it gossips, as
 * `?forward=` does. A request carries `x-pico-forward`, so the peer answers for itself alone (no fan-out loops),
 * and the caller's credentials go only to members the cluster key vouches for: without a key, gossip is
 * unauthenticated and anyone could have announced the node.
 */
export const makePeers = (options: PeersOptions) =>
  Effect.gen(function* () {
    const registry = yield* Registry
    const { agent, authenticatedCluster } = yield* makePeerConnections(options.tls)

    const headersFor = (caller: http.IncomingMessage, body: Buffer | undefined): Record<string, string> => ({
      [forwardHeader]: "true",
      ...(authenticatedCluster && caller.headers.authorization !== undefined
        ? { authorization: caller.headers.authorization }
        : {}),
      ...(body === undefined
        ? {}
        : { "content-type": "application/json", "content-length": String(body.length) }),
    })

    /** Sends one request to the node; `onResponse` takes over once the head has arrived. */
    const send = <A>(
      node: ClusterNode,
      method: string,
      path: string,
      caller: http.IncomingMessage,
      body: Buffer | undefined,
      onResponse: (
        res: http.IncomingMessage,
        resume: (outcome: Effect.Effect<A, PeerFailure>) => void,
      ) => void,
    ): Effect.Effect<A, PeerFailure> =>
      options.requiresToken && !authenticatedCluster
        ? Effect.fail(credentialsNeedKey)
        : Effect.async<A, PeerFailure>((resume) => {
            const target = dialAddress(node.adminAddr)
            const req = (options.tls ? https.request : http.request)({
              host: target.host,
              port: target.port,
              method,
              path,
              headers: headersFor(caller, body),
              agent,
            })
            const timer = setTimeout(
              () => req.destroy(new Error(`no answer within ${options.timeout}ms`)),
              options.timeout,
            )
            req.on("response", (res) => {
              clearTimeout(timer)
              onResponse(res, resume)
            })
            req.on("error", (error) => {
              clearTimeout(timer)
              resume(Effect.fail(`${node.adminAddr}: ${error.message}`))
            })
            req.end(body)
            return Effect.sync(() => {
              clearTimeout(timer)
              req.destroy()
            })
          })

    /** The node's answer to one request, read whole. */
    const ask = (
      node: ClusterNode,
      method: string,
      path: string,
      caller: http.IncomingMessage,
      body?: Buffer,
    ): Effect.Effect<PeerAnswer, PeerFailure> =>
      send<PeerAnswer>(node, method, path, caller, body, (res, resume) => {
        const chunks: Array<Buffer> = []
        res.on("data", (chunk: Buffer) => chunks.push(chunk))
        res.on("end", () =>
          resume(Effect.succeed({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) })),
        )
        res.on("error", (error) => resume(Effect.fail(error.message)))
      })

    /** The `data:` payloads of the node's event stream at `path`, as they come; ends when the stream does. */
    const events = (
      node: ClusterNode,
      path: string,
      caller: http.IncomingMessage,
    ): Stream.Stream<string, PeerFailure> =>
      Stream.asyncPush<string, PeerFailure>((emit) =>
        Effect.gen(function* () {
          const res = yield* send<http.IncomingMessage>(node, "GET", path, caller, undefined, (res, resume) =>
            resume(Effect.succeed(res)),
          )
          if (res.statusCode !== 200) {
            res.resume()
            return yield* Effect.fail(`${node.adminAddr}: status ${res.statusCode}`)
          }
          let partial = ""
          res.setEncoding("utf8")
          res.on("data", (text: string) => {
            partial += text
            const frames = partial.split("\n\n")
            partial = frames.pop() ?? ""
            for (const frame of frames)
              for (const line of frame.split("\n")) if (line.startsWith("data: ")) emit.single(line.slice(6))
          })
          res.on("end", () => emit.end())
          res.on("error", (error) => emit.fail(error.message))
          yield* Effect.addFinalizer(() => Effect.sync(() => res.destroy()))
        }),
      )

    /** The active peers, whose admin addresses are known. */
    const active = Effect.map(registry.clusterNodes, (nodes) =>
      nodes.filter((node) => node.status === "active"),
    )

    /** This node's part and every active peer's, asked at once; a peer that fails is listed as missing. */
    const gather = <A>(
      local: Effect.Effect<A>,
      remote: (node: ClusterNode) => Effect.Effect<A, PeerFailure>,
    ): Effect.Effect<Gathered<A>> =>
      Effect.gen(function* () {
        const peers = yield* active
        const outcomes = yield* Effect.all(
          peers.map((node) => Effect.either(remote(node))),
          { concurrency: "unbounded" },
        )
        const gathered: Gathered<A> = { answers: [yield* local], missing: [] }
        outcomes.forEach((outcome, i) => {
          if (outcome._tag === "Right") gathered.answers.push(outcome.right)
          else gathered.missing.push({ node: (peers[i] as ClusterNode).id, error: outcome.left })
        })
        return gathered
      })

    return { ask, events, active, gather, authenticatedCluster }
  })

export type Peers = Effect.Effect.Success<ReturnType<typeof makePeers>>
