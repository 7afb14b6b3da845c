import type { IncomingHttpHeaders } from "node:http"

const ipv4Literal = /^\d{1,3}(?:\.\d{1,3}){3}$/

/** Where a TCP upgrade may name its endpoint instead of a header: `GET /pico/v1/tcp/<endpoint id>`. */
export const tcpPathPrefix = "/pico/v1/tcp/"

/**
 * The endpoint a request is for: `x-pico-endpoint` wins (as given); then, for a TCP upgrade whose `tcpTarget`
 * (its request target) is `/pico/v1/tcp/<id>`, that id; else the first label of a dotted Host name, lower-cased
 * because DNS names are not case-sensitive (`My-Endpoint.pico.example.com:8000` → `my-endpoint`). IP literals and
 * single-label hosts such as `localhost` carry no endpoint id.
 */
export const endpointIdFromHeaders = (
  headers: IncomingHttpHeaders,
  tcpTarget?: string,
): string | undefined => {
  const explicit = headers["x-pico-endpoint"]
  if (typeof explicit === "string" && explicit !== "") return explicit
  if (tcpTarget?.startsWith(tcpPathPrefix) === true) {
    const query = tcpTarget.indexOf("?")
    return tcpTarget.slice(tcpPathPrefix.length, query < 0 ? undefined : query)
  }
  const host = headers.host
  if (host === undefined || host.charCodeAt(0) === 91 /* "[": an IP literal */) return undefined
  const colon = host.indexOf(":")
  const name = colon < 0 ? host : host.slice(0, colon)
  const dot = name.indexOf(".")
  if (dot <= 0 || ipv4Literal.test(name)) return undefined
  return name.slice(0, dot).toLowerCase()
}
