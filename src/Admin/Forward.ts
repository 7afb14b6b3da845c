import * as http from "node:http"
import * as https from "node:https"
import { Effect, Option } from "effect"
import { ClusterKeys } from "../ClusterKeys.js"
import { dialAddress } from "../Domain/Address.js"
import { jsonError, write } from "../internal/Router.js"
import { type AttemptOutcome, attempt, type Exchange } from "../Proxy/Forward.js"
import { upstreamRequestHeaders } from "../Proxy/Headers.js"
import { forwardHeader } from "../Proxy/PeerProof.js"
import { Registry } from "../Registry.js"

const nodeNotFound = jsonError(404, "node not found")
const nodeUnreachable = jsonError(502, "node unreachable")
const nodeTimeout = jsonError(504, "node timeout")
const unauthenticatedCluster = jsonError(
  403,
  "forwarding credentials needs an authenticated cluster: set --gossip.secret-key on every node",
)

type Failed = Extract<AttemptOutcome, { readonly _tag: "Retry" }>

export interface ForwardOptions {
  /** The admin ports serve TLS. */
  readonly tls: boolean
  /** Milliseconds to wait for the other node's response headers. */
  readonly timeout: number
  /** This admin port requires a token, so the request carries one that must reach only a real member. */
  readonly requiresToken: boolean
}

/**
 * Runs an admin request (`?forward=<node id>`) on another node, through the admin address it gossips, and
 * streams the answer back: so one load-balanced admin address can inspect every node. The `forward` parameter
 * stays in the query, so the target answers itself. The caller's credentials go only to a member the cluster key
 * vouches for: without a key, gossip is unauthenticated and anyone could have announced the node.
 */
export const makeForward = (options: ForwardOptions) =>
  Effect.gen(function* () {
    const registry = yield* Registry
    const keys = yield* Effect.serviceOption(ClusterKeys)
    const authenticatedCluster = Option.isSome(keys) && keys.value.keyring !== undefined
    const agent = options.tls ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true })
    yield* Effect.addFinalizer(() => Effect.sync(() => agent.destroy()))

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
        const exchange: Exchange = {
          kind: "http",
          req,
          res,
          upgrade: undefined,
          gatewayTimeout: options.timeout,
          routeDeadline: Date.now() + options.timeout,
          idleTimeout: options.timeout,
          closeConnection: () => false,
          bodySpent: false,
        }
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
