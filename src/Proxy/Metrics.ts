import { Effect } from "effect"
import * as Metrics from "../Metrics.js"

/** The proxy's metrics, updated synchronously from the request path; label sets are built once per value. */
export interface ProxyMetrics {
  /**
   * The exchange is over (or the client left): `status` is what the client got (499: nothing), `started`
   * performance.now() when the request arrived.
   */
  readonly requestEnded: (status: number, started: number) => void
  readonly forwardedLocal: () => void
  readonly forwardedRemote: (nodeId: string) => void
}

/** The proxy metrics of the current node (its instance label comes from the fiber building the proxy). */
export const make: Effect.Effect<ProxyMetrics> = Effect.map(Metrics.currentLabels, (node) => {
  const byStatus = Metrics.labelCache(node, "status", (status: number) => String(status))
  // One entry per peer node id, as in the registry: ids are fresh per restart, so both grow slowly with restarts.
  const byTarget = Metrics.labelCache(node, "node_id", (nodeId: string) => nodeId)
  return {
    requestEnded: (status, started) => {
      Metrics.proxyRequests.unsafeUpdate(1, byStatus(status))
      Metrics.proxyRequestDuration.unsafeUpdate((performance.now() - started) / 1000, node)
    },
    forwardedLocal: () => Metrics.proxyForwardedLocal.unsafeUpdate(1, node),
    forwardedRemote: (nodeId) => Metrics.proxyForwardedRemote.unsafeUpdate(1, byTarget(nodeId)),
  }
})
