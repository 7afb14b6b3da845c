import type * as http from "node:http"
import { Effect } from "effect"
import * as Metrics from "../Metrics.js"

/** Recorded for a request whose client went away before a response started (nginx's convention). */
const CLIENT_CLOSED_REQUEST = 499

/** The proxy's metrics, updated synchronously from the request path; label sets are built once per value. */
export interface ProxyMetrics {
  /** The exchange is over (or the client left); `started` is performance.now() when the request arrived. */
  readonly requestEnded: (res: http.ServerResponse, started: number) => void
  readonly forwardedLocal: () => void
  readonly forwardedRemote: (nodeId: string) => void
}

/** The proxy metrics of the current node (its instance label comes from the fiber building the proxy). */
export const make: Effect.Effect<ProxyMetrics> = Effect.map(Metrics.currentLabels, (node) => {
  const byStatus = Metrics.labelCache(node, "status", (status: number) => String(status))
  // One entry per peer node id, as in the registry: ids are fresh per restart, so both grow slowly with restarts.
  const byTarget = Metrics.labelCache(node, "node_id", (nodeId: string) => nodeId)
  return {
    requestEnded: (res, started) => {
      // A switched upgrade's 101 went out on the raw connection, past the response object: it counts as sent.
      const answered = res.headersSent || res.statusCode === 101
      Metrics.proxyRequests.unsafeUpdate(1, byStatus(answered ? res.statusCode : CLIENT_CLOSED_REQUEST))
      Metrics.proxyRequestDuration.unsafeUpdate((performance.now() - started) / 1000, node)
    },
    forwardedLocal: () => Metrics.proxyForwardedLocal.unsafeUpdate(1, node),
    forwardedRemote: (nodeId) => Metrics.proxyForwardedRemote.unsafeUpdate(1, byTarget(nodeId)),
  }
})
