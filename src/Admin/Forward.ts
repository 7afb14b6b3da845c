import * as http from "node:http"
import * as https from "node:https"
import { Effect } from "effect"
import { dialAddress } from "../Domain/Address.js"
import { jsonError, write } from "../internal/Router.js"
import { exchange } from "../Proxy/Forward.js"
import { upstreamRequestHeaders } from "../Proxy/Headers.js"
import { Registry } from "../Registry.js"

/** Marks a request one node forwards to another, which must answer it itself (one hop at most). */
const forwardedHeader = "x-pico-forward"

/** As long as the proxy's default gateway timeout: a node that takes longer is as good as unreachable. */
const FORWARD_TIMEOUT = 15_000

const nodeNotFound = jsonError(404, "node not found")
const nodeUnreachable = jsonError(502, "node unreachable")
const nodeTimeout = jsonError(504, "node timeout")

/**
 * Runs an admin request (`?forward=<node id>`) on another node, through the admin address it gossips, and
 * streams the answer back: so one load-balanced admin address can inspect every node. The `forward` parameter
 * stays in the query, so the target answers itself. `tls`: the admin ports serve TLS.
 */
export const makeForward = (tls: boolean) =>
  Effect.gen(function* () {
    const registry = yield* Registry
    const agent = tls ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true })
    yield* Effect.addFinalizer(() => Effect.sync(() => agent.destroy()))
    const options = { gatewayTimeout: FORWARD_TIMEOUT, closeConnection: () => false }

    return (req: http.IncomingMessage, res: http.ServerResponse, nodeId: string): Effect.Effect<void> =>
      Effect.gen(function* () {
        // A node asked to forward again knows the cluster differently from the sender: that is no route.
        const node =
          req.headers[forwardedHeader] === "true"
            ? undefined
            : (yield* registry.clusterNodes).find((candidate) => candidate.id === nodeId)
        if (node === undefined) return write(res, nodeNotFound)
        const headers = upstreamRequestHeaders(req, {
          keepUpgrade: false,
          credentials: "forward",
          fromPeer: false,
        })
        headers.push(forwardedHeader, "true")
        const target = dialAddress(node.adminAddr)
        yield* exchange(
          req,
          res,
          options,
          { agent, target, tls, headers, expectContinue: false },
          () => undefined,
        ).pipe(
          Effect.catchAll((error) =>
            Effect.logWarning("forward admin request failed").pipe(
              Effect.annotateLogs({
                "node-id": nodeId,
                addr: node.adminAddr,
                reason: error.reason,
                ...(error.detail === undefined ? {} : { detail: error.detail }),
              }),
              Effect.zipRight(
                Effect.sync(() =>
                  write(res, error.reason === "endpoint timeout" ? nodeTimeout : nodeUnreachable),
                ),
              ),
            ),
          ),
        )
      }).pipe(Effect.annotateLogs("subsystem", "admin"))
  })
