import { MetricLabel } from "effect"
import * as Metrics from "../Metrics.js"

/**
 * One endpoint's forwarding metrics, for the agent's forwarder. Updated synchronously from its socket callbacks;
 * the label sets are built once, so a stream allocates none.
 */
export interface ForwardMetrics {
  /** A tunnel stream arrived; returns its start time, for `responded`. */
  readonly forwarded: () => number
  /** The local service sent the first response bytes of a stream that arrived at `started`. */
  readonly responded: (started: number) => void
  /** The local service could not take a stream ("upstream unreachable", "upstream timeout"). */
  readonly failed: (reason: string) => void
}

export const forwardMetrics = (endpointId: string): ForwardMetrics => {
  const endpoint = [MetricLabel.make("endpoint_id", endpointId)]
  const byReason = Metrics.labelCache(endpoint, "reason", (reason: string) => reason)
  return {
    forwarded: () => {
      Metrics.agentForwards.unsafeUpdate(1, endpoint)
      return performance.now()
    },
    responded: (started) =>
      Metrics.agentResponseLatency.unsafeUpdate((performance.now() - started) / 1000, endpoint),
    failed: (reason) => Metrics.agentForwardErrors.unsafeUpdate(1, byReason(reason)),
  }
}
