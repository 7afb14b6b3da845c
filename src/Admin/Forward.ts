import type * as http from "node:http"
import { Effect } from "effect"
import { dialAddress } from "../Domain/Address.js"
import { jsonError, write } from "../internal/Router.js"
import { type AttemptOutcome, attempt, newExchange } from "../Proxy/Forward.js"
import { upstreamRequestHeaders } from "../Proxy/Headers.js"
import { forwardHeader } from "../Proxy/PeerProof.js"
import { Registry } from "../Registry.js"
import { credentialsNeedKey, makePeerConnections, type PeersOptions } from "./Peers.js"

const nodeNotFound = jsonError(404, "node not found")
const nodeUnreachable = jsonError(502, "node unreachable")
const nodeTimeout = jsonError(504, "node timeout")
const unauthenticatedCluster = jsonError(403, credentialsNeedKey)

const keepConnection = () => false

type Failed = Extract<AttemptOutcome, { readonly _tag: "Retry" }>

export type ForwardOptions = PeersOptions

/**
 * Runs an admin request (`?forward=<node id>`) on another node, through the admin address it gossips, and
 * streams the answer back: so one load-balanced admin address can inspect every node. The `forward` parameter
 * stays in the query, so the target answers itself. The caller's credentials go only to a member the cluster key
 * vouches for: without a key, gossip is unauthenticated and anyone could have announced the node.
 */
export const makeForward = (options: ForwardOptions) =>
  Effect.gen(function* () {
    const registry = yield* Registry
    const { agent, authenticatedCluster } = yield* makePeerConnections(options.tls)

    return (req: http.IncomingMessage, res: http.ServerResponse, nodeId: string): Effect.Effect<void> =>
      Effect.gen(function* () {
        // A node asked to forward again knows the cluster differently from the sender: that is no route.
        const node =
          req.headers[forwardHeader] === undefined
            ? (yield* registry.clusterNodes).find((candidate) => candidate.id === nodeId)
            : undefined
        if (node === undefined) return write(res, nodeNotFound)
        if (options.requiresToken && !authenticatedCluster) return write(res, unauthenticatedCluster)
        const headers = upstreamRequestHeaders(req, {
          keepUpgrade: false,
          credentials: authenticatedCluster ? "forward" : "strip authorization",
          fromPeer: false,
        })
        if (headers === undefined) return write(res, jsonError(400, "duplicate host header"))
        headers.push(forwardHeader, "true")
        const exchange = newExchange(
          req,
          res,
          undefined,
          { gatewayTimeout: options.timeout, idleTimeout: options.timeout },
          keepConnection,
        )
        const outcome = yield* attempt(exchange, {
          agent,
          target: dialAddress(node.adminAddr),
          tls: options.tls,
          headers,
          expectContinue: false,
        }).pipe(Effect.either)
        if (outcome._tag === "Right" && outcome.right._tag === "Done") return
        const { reason, detail } = outcome._tag === "Left" ? outcome.left : (outcome.right as Failed)
        yield* Effect.logWarning("forward admin request failed").pipe(
          Effect.annotateLogs({
            "node-id": nodeId,
            addr: node.adminAddr,
            reason,
            ...(detail === undefined ? {} : { detail }),
          }),
        )
        write(res, reason === "endpoint timeout" ? nodeTimeout : nodeUnreachable)
      }).pipe(Effect.annotateLogs("subsystem", "admin"))
  })
