import type { IncomingHttpHeaders } from "node:http"

const ipv4Literal = /^\d{1,3}(?:\.\d{1,3}){3}$/

/**
 * The endpoint a request is for: `x-pico-endpoint` wins (as given), else the first label of a dotted Host name,
 * lower-cased because DNS names are not case-sensitive (`My-Endpoint.pico.example.com:8000` → `my-endpoint`).
 * IP literals and single-label hosts such as `localhost` carry no endpoint id.
 */
export const endpointIdFromHeaders = (headers: IncomingHttpHeaders): string | undefined => {
  const explicit = headers["x-pico-endpoint"]
  if (typeof explicit === "string" && explicit !== "") return explicit
  const host = headers.host
  if (host === undefined || host.charCodeAt(0) === 91 /* "[": an IP literal */) return undefined
  const colon = host.indexOf(":")
  const name = colon < 0 ? host : host.slice(0, colon)
  const dot = name.indexOf(".")
  if (dot <= 0 || ipv4Literal.test(name)) return undefined
  return name.slice(0, dot).toLowerCase()
}
