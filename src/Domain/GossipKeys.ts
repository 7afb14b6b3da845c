/**
 * The keys a node publishes in its gossip state, and what their values mean. Written by the node (its addresses,
 * by the server program; its endpoints, by the Registry) and read by every other node's cluster view.
 */
export const GossipKeys = {
  /** host:port where the node's proxy port takes forwarded requests. */
  proxyAddr: "proxy_addr",
  /** host:port of the node's admin port, for `?forward=`. */
  adminAddr: "admin_addr",
} as const

const endpointPrefix = "endpoint:"

/** The key holding how many upstreams of the endpoint are connected to the node. */
export const endpointKey = (endpointId: string): string => `${endpointPrefix}${endpointId}`

/** The endpoint id an `endpoint:<id>` key is about, or undefined for any other key. */
export const endpointOfKey = (key: string): string | undefined =>
  key.startsWith(endpointPrefix) ? key.slice(endpointPrefix.length) : undefined
