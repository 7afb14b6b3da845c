import type { EndpointId } from "../Domain/EndpointId.js"

/**
 * One TCP endpoint's connections through this node's tunnels to it: counted by the node holding the endpoint's
 * upstream, whichever node the client entered through, so a cluster counts each connection once.
 */
export interface TcpCounters {
  /** Connections open now. */
  open: number
  /** Connections opened since the node started (while the endpoint was held here). */
  opened: number
  bytesFromClients: number
  bytesToClients: number
}

/** The TCP counters of the endpoints whose connections run through this node's tunnels. */
export interface TcpTraffic {
  /** The endpoint's counters, created on first use; a pass-through updates them as bytes flow. */
  readonly of: (endpointId: EndpointId) => TcpCounters
  /**
   * The counters of every endpoint in `held` (the TCP endpoints this node holds; zeros for one without any
   * connection yet) and of any other with connections still open, sorted by endpoint id. The others are
   * forgotten: memory follows the endpoints the node holds.
   */
  readonly snapshot: (
    held: ReadonlySet<EndpointId>,
  ) => ReadonlyArray<readonly [EndpointId, Readonly<TcpCounters>]>
}

export const make = (): TcpTraffic => {
  const byEndpoint = new Map<EndpointId, TcpCounters>()
  const of = (endpointId: EndpointId): TcpCounters => {
    let counters = byEndpoint.get(endpointId)
    if (counters === undefined) {
      counters = { open: 0, opened: 0, bytesFromClients: 0, bytesToClients: 0 }
      byEndpoint.set(endpointId, counters)
    }
    return counters
  }
  return {
    of,
    snapshot: (held) => {
      for (const endpointId of held) of(endpointId)
      for (const [endpointId, counters] of byEndpoint)
        if (counters.open === 0 && !held.has(endpointId)) byEndpoint.delete(endpointId)
      return [...byEndpoint].sort(([a], [b]) => (a < b ? -1 : 1))
    },
  }
}
