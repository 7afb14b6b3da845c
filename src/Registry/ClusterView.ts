import type { EndpointKind } from "../Domain/EndpointKind.js"
import { endpointOfKey, GossipKeys, parseEndpointValue } from "../Domain/GossipKeys.js"

/** A remote node's routing information, learned through gossip. */
export interface ClusterNode {
  readonly id: string
  readonly status: "active" | "unreachable" | "left"
  readonly proxyAddr: string
  readonly adminAddr: string
  /** Endpoint id → number of upstreams connected to that node. */
  readonly endpoints: ReadonlyMap<string, number>
  /** Which of those endpoints are TCP endpoints (the others are HTTP). */
  readonly tcpEndpoints: ReadonlySet<string>
}

/** The gossip events the view needs (a subset of Gossip's, so the view can be tested on its own). */
export type ClusterEvent =
  | { readonly _tag: "NodeJoined"; readonly nodeId: string }
  | { readonly _tag: "KeyUpdated"; readonly nodeId: string; readonly key: string; readonly value: string }
  | { readonly _tag: "KeyDeleted"; readonly nodeId: string; readonly key: string }
  | { readonly _tag: "NodeStatusChanged"; readonly nodeId: string; readonly status: ClusterNode["status"] }
  | { readonly _tag: "NodeRemoved"; readonly nodeId: string }

interface MutableNode {
  status: ClusterNode["status"]
  proxyAddr: string | undefined
  adminAddr: string | undefined
  readonly endpoints: Map<string, number>
  readonly tcpEndpoints: Set<string>
}

const none: ReadonlyArray<string> = []
const noneExcluded: ReadonlySet<string> = new Set()

/**
 * Which remote node holds which endpoint, built from gossip events. A node becomes routable only once both of
 * its addresses are known (before that it is "pending": gossip has told us it exists, not how to reach it).
 */
export class ClusterView {
  private readonly nodes = new Map<string, MutableNode>()

  constructor(private readonly random: () => number = Math.random) {}

  /**
   * Takes in one gossip event. Returns the endpoints that event took a route away from (the node holding it
   * withdrew it, went silent, left or was removed), so the registry knows which endpoints may come back.
   */
  apply(event: ClusterEvent): ReadonlyArray<string> {
    switch (event._tag) {
      case "NodeJoined":
        this.nodeFor(event.nodeId)
        return none
      case "KeyUpdated": {
        const node = this.nodeFor(event.nodeId)
        const endpointId = endpointOfKey(event.key)
        if (event.key === GossipKeys.proxyAddr) node.proxyAddr = event.value
        else if (event.key === GossipKeys.adminAddr) node.adminAddr = event.value
        else if (endpointId !== undefined) {
          const parsed = parseEndpointValue(event.value)
          // A malformed value is ignored rather than routed to: it can only come from a buggy or hostile peer.
          if (parsed !== undefined) {
            node.endpoints.set(endpointId, parsed.upstreams)
            if (parsed.kind === "tcp") node.tcpEndpoints.add(endpointId)
            else node.tcpEndpoints.delete(endpointId)
          } else if (this.forget(node, endpointId)) return [endpointId]
        }
        return none
      }
      case "KeyDeleted": {
        const endpointId = endpointOfKey(event.key)
        if (endpointId === undefined) return none
        const node = this.nodes.get(event.nodeId)
        return node !== undefined && this.forget(node, endpointId) ? [endpointId] : none
      }
      case "NodeStatusChanged": {
        const node = this.nodeFor(event.nodeId)
        const wasActive = node.status === "active"
        node.status = event.status
        return wasActive && event.status !== "active" ? [...node.endpoints.keys()] : none
      }
      case "NodeRemoved": {
        const node = this.nodes.get(event.nodeId)
        this.nodes.delete(event.nodeId)
        return node === undefined ? none : [...node.endpoints.keys()]
      }
    }
  }

  /**
   * An active node holding the endpoint, chosen at random weighted by its upstream count (so load spreads in
   * proportion to capacity), skipping the nodes in `exclude` (already tried).
   */
  pick(endpointId: string, exclude: ReadonlySet<string>): ClusterNode | undefined {
    let total = 0
    for (const [id, node] of this.nodes) {
      if (this.routable(id, node, exclude)) total += node.endpoints.get(endpointId) ?? 0
    }
    if (total === 0) return undefined
    let target = this.random() * total
    for (const [id, node] of this.nodes) {
      if (!this.routable(id, node, exclude)) continue
      target -= node.endpoints.get(endpointId) ?? 0
      if (target < 0 && node.endpoints.has(endpointId)) return this.snapshot(id, node)
    }
    return undefined
  }

  /** The kind of the endpoint as the active nodes holding it advertise it; undefined when none does. */
  kindOf(endpointId: string): EndpointKind | undefined {
    for (const [id, node] of this.nodes) {
      if (node.endpoints.has(endpointId) && this.routable(id, node, noneExcluded))
        return node.tcpEndpoints.has(endpointId) ? "tcp" : "http"
    }
    return undefined
  }

  /** Every node whose addresses are known (pending nodes are left out). */
  list(): ReadonlyArray<ClusterNode> {
    const out: Array<ClusterNode> = []
    for (const [id, node] of this.nodes) {
      if (node.proxyAddr !== undefined && node.adminAddr !== undefined) out.push(this.snapshot(id, node))
    }
    return out
  }

  get(id: string): ClusterNode | undefined {
    const node = this.nodes.get(id)
    return node?.proxyAddr === undefined || node.adminAddr === undefined ? undefined : this.snapshot(id, node)
  }

  private routable(id: string, node: MutableNode, exclude: ReadonlySet<string>): boolean {
    return (
      node.status === "active" &&
      node.proxyAddr !== undefined &&
      node.adminAddr !== undefined &&
      !exclude.has(id)
    )
  }

  private forget(node: MutableNode, endpointId: string): boolean {
    node.tcpEndpoints.delete(endpointId)
    return node.endpoints.delete(endpointId)
  }

  private nodeFor(id: string): MutableNode {
    let node = this.nodes.get(id)
    if (node === undefined) {
      node = {
        status: "active",
        proxyAddr: undefined,
        adminAddr: undefined,
        endpoints: new Map(),
        tcpEndpoints: new Set(),
      }
      this.nodes.set(id, node)
    }
    return node
  }

  private snapshot(id: string, node: MutableNode): ClusterNode {
    return {
      id,
      status: node.status,
      proxyAddr: node.proxyAddr as string,
      adminAddr: node.adminAddr as string,
      endpoints: new Map(node.endpoints),
      tcpEndpoints: new Set(node.tcpEndpoints),
    }
  }
}
