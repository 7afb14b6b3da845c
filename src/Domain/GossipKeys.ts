import { type EndpointKind, isEndpointKind } from "./EndpointKind.js"

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

/**
 * The value of an endpoint's key: how many of its upstreams are connected to the node, followed by " tcp" for a
 * TCP endpoint. An HTTP endpoint's value is the bare count, as before endpoints had kinds; a node that predates
 * kinds reads "2 tcp" as a malformed count and ignores it, which is right, since it cannot carry TCP.
 */
export const endpointValue = (upstreams: number, kind: EndpointKind): string =>
  kind === "http" ? String(upstreams) : `${upstreams} ${kind}`

/** Reads an endpoint key's value; undefined when malformed (a buggy or hostile peer), which is then ignored. */
export const parseEndpointValue = (
  value: string,
): { readonly upstreams: number; readonly kind: EndpointKind } | undefined => {
  const space = value.indexOf(" ")
  const upstreams = Number(space < 0 ? value : value.slice(0, space))
  const kind = space < 0 ? "http" : value.slice(space + 1)
  return Number.isInteger(upstreams) && upstreams > 0 && isEndpointKind(kind)
    ? { upstreams, kind }
    : undefined
}
