import type * as http from "node:http"
import type { TLSSocket } from "node:tls"

/** Headers that describe one connection, not the message, and so never cross a proxy (RFC 9110 §7.6.1). */
const hopByHop = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
])

/** Header names the sender listed in `Connection`, which are hop-by-hop for this message too. */
const connectionListed = (connection: string | undefined): ReadonlySet<string> | undefined => {
  if (connection === undefined) return undefined
  const names = connection.toLowerCase().split(",")
  if (names.length === 1 && (names[0] === "keep-alive" || names[0] === "close")) return undefined
  return new Set(names.map((name) => name.trim()))
}

const clientIp = (req: http.IncomingMessage): string => {
  const address = req.socket.remoteAddress ?? ""
  return address.startsWith("::ffff:") ? address.slice(7) : address
}

/** How the request headers are rewritten for the next hop. Use the constants below: they are shared, not rebuilt. */
export interface HeaderPolicy {
  /** Keep Connection and Upgrade: a WebSocket handshake needs them to reach the upstream. */
  readonly keepUpgrade: boolean
  /**
   * Pico's own credentials: "strip" removes `x-pico-authorization`; "strip authorization" also removes
   * `Authorization`, when that is what carried the Pico token; "forward" keeps both for a peer node, which
   * checks them again.
   */
  readonly credentials: "strip" | "strip authorization" | "forward"
  /** The request came from a peer node: its X-Forwarded-* headers already describe the real client. */
  readonly fromPeer: boolean
}

/**
 * The request headers for the next hop, as a flat raw list so repeated headers stay separate and their case and
 * order are kept. Hop-by-hop headers are dropped (see HeaderPolicy for what else), and X-Forwarded-For/-Proto/-Host
 * describe the client.
 */
export const upstreamRequestHeaders = (req: http.IncomingMessage, hop: HeaderPolicy): Array<string> => {
  const raw = req.rawHeaders
  const listed = hop.keepUpgrade ? undefined : connectionListed(req.headers.connection)
  const out: Array<string> = []
  let forwardedFor: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    const lower = name.toLowerCase()
    if (!hop.fromPeer) {
      if (lower === "x-forwarded-for") {
        forwardedFor = forwardedFor === undefined ? (raw[i + 1] as string) : `${forwardedFor}, ${raw[i + 1]}`
        continue
      }
      if (lower === "x-forwarded-proto" || lower === "x-forwarded-host") continue
    }
    if (hop.credentials !== "forward") {
      if (lower === "x-pico-authorization") continue
      if (hop.credentials === "strip authorization" && lower === "authorization") continue
    }
    if (lower === "x-pico-forward") continue
    if (!hop.keepUpgrade && (hopByHop.has(lower) || listed?.has(lower) === true)) continue
    out.push(name, raw[i + 1] as string)
  }
  if (!hop.fromPeer) {
    const ip = clientIp(req)
    out.push("X-Forwarded-For", forwardedFor === undefined ? ip : `${forwardedFor}, ${ip}`)
    out.push("X-Forwarded-Proto", (req.socket as TLSSocket).encrypted === true ? "https" : "http")
    if (req.headers.host !== undefined) out.push("X-Forwarded-Host", req.headers.host)
  }
  return out
}

/** The upstream response's headers minus hop-by-hop ones, as a flat raw list (two Set-Cookie stay two). */
export const clientResponseHeaders = (res: http.IncomingMessage, closeConnection: boolean): Array<string> => {
  const raw = res.rawHeaders
  const listed = connectionListed(res.headers.connection)
  const out: Array<string> = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    const lower = name.toLowerCase()
    if (hopByHop.has(lower) || listed?.has(lower) === true) continue
    out.push(name, raw[i + 1] as string)
  }
  // While draining, ask clients to reconnect (through the load balancer) to a node that is staying.
  if (closeConnection) out.push("Connection", "close")
  return out
}

/** Serialises a request head for a raw stream (WebSocket upgrades are piped as bytes after it). */
export const requestHead = (req: http.IncomingMessage, headers: ReadonlyArray<string>): string => {
  let head = `${req.method} ${req.url} HTTP/1.1\r\n`
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`
  return `${head}\r\n`
}
