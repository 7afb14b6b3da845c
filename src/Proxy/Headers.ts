import type * as http from "node:http"
import type { Socket } from "node:net"
import type { TLSSocket } from "node:tls"
import { peerHost } from "../Domain/Address.js"
import { tcpSocketOf } from "../internal/TcpSocket.js"
import { picoErrorHeader } from "./Errors.js"

/** Headers that describe one connection, not the message, and so never cross a proxy (RFC 9110 §7.6.1). */
const hopByHop = new Set([
  "connection",
  // Every node answers 100-continue itself (and refuses other expectations), so the ask ends at the node; between
  // nodes Pico asks on its own behalf.
  "expect",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
])

/** A Connection value that is only `keep-alive` or only `close`, in any case and spacing: almost every one is. */
const keepAliveOnly = /^[\t ]*keep-alive[\t ]*$/i
const closeOnly = /^[\t ]*close[\t ]*$/i
/** What `Connection: close` lists: a field named Close goes too (RFC 9110 reserves the name for that reason). */
const closeListed: ReadonlySet<string> = new Set(["close"])

/**
 * Fields a Connection header cannot make hop-by-hop. A request's head goes to its service as Pico writes it: a
 * body whose Content-Length were dropped would be read there as the next request (smuggling), and an HTTP/1.1
 * request must name its Host.
 */
const neverListed: ReadonlySet<string> = new Set(["content-length", "host"])

/**
 * Header names the sender listed in `Connection`, which are hop-by-hop for this message too (but neverListed).
 * The common values build no set (this runs twice a request): `keep-alive` names a field that is hop-by-hop anyway.
 */
const connectionListed = (connection: string | undefined): ReadonlySet<string> | undefined => {
  if (connection === undefined || keepAliveOnly.test(connection)) return undefined
  if (closeOnly.test(connection)) return closeListed
  const listed = new Set<string>()
  for (const name of connection.toLowerCase().split(",")) {
    const trimmed = name.trim()
    if (!neverListed.has(trimmed)) listed.add(trimmed)
  }
  return listed
}

/**
 * The client's address as its socket gives it (a TLS socket's own, or its TCP socket's), without the IPv4-mapped
 * prefix; "" for an in-process request (a replay), or a client that reset its connection before it could be read.
 */
export const clientIp = (req: http.IncomingMessage): string =>
  peerHost(req.socket.remoteAddress ?? (tcpSocketOf(req.socket) as Socket).remoteAddress ?? "")

/** How the request headers are rewritten for the next hop. Use the constants below: they are shared, not rebuilt. */
export interface HeaderPolicy {
  /**
   * An upgrade request (a WebSocket handshake): `Upgrade` and `Connection: Upgrade` reach the upstream, the other
   * hop-by-hop headers do not.
   */
  readonly keepUpgrade: boolean
  /**
   * Pico's own credentials: "strip" removes `x-pico-authorization`; "strip authorization" also removes
   * `Authorization`, when that is what carried the Pico token; "forward" keeps both for a peer node, which
   * checks them again.
   */
  readonly credentials: "strip" | "strip authorization" | "forward"
  /**
   * The request came from a peer node that proved it (see PeerProof): its X-Forwarded-* headers already describe
   * the real client and are kept. From anyone else they are appended to (For) or replaced (Proto, Host).
   */
  readonly fromPeer: boolean
}

/** Says which node forwarded a request, for the receiving node's access log line. */
export const forwardedByHeader = "x-pico-forwarded-by"

/** Marks a replay of a captured request (its value: the original request id); see Inspector/Replay.ts. */
export const replayHeader = "x-pico-replay"

/** Pico's own markers between its nodes, which never reach a service. */
const picoInternal = new Set(["x-pico-forward", forwardedByHeader, replayHeader])

/**
 * The request headers for the next hop, as a flat raw list so repeated headers stay separate and their case and
 * order are kept. Hop-by-hop headers are dropped (see HeaderPolicy for what else), and X-Forwarded-For/-Proto/-Host
 * describe the client. With `requestId`, X-Request-Id carries it, in place of whatever the client sent. Undefined
 * when the request has two Host headers: which one names the endpoint would be a guess that an attacker could
 * exploit (RFC 9112 §3.2: 400).
 */
export const upstreamRequestHeaders = (
  req: http.IncomingMessage,
  hop: HeaderPolicy,
  requestId?: string,
): Array<string> | undefined => {
  const raw = req.rawHeaders
  const listed = connectionListed(req.headers.connection)
  const out: Array<string> = []
  let forwardedFor: string | undefined
  let hosts = 0
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    const lower = name.toLowerCase()
    if (lower === "host" && ++hosts > 1) return undefined
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
    if (picoInternal.has(lower) || (requestId !== undefined && lower === "x-request-id")) continue
    if (hopByHop.has(lower) || listed?.has(lower) === true) {
      if (hop.keepUpgrade && lower === "upgrade") out.push(name, raw[i + 1] as string)
      continue
    }
    out.push(name, raw[i + 1] as string)
  }
  // HTTP/1.1 requires Host: an HTTP/1.0 request without one goes on with it empty, as for no authority (RFC 9112 §3.2).
  if (hosts === 0 && req.httpVersionMinor === 0) out.push("Host", "")
  if (hop.keepUpgrade) out.push("Connection", "Upgrade")
  if (requestId !== undefined) out.push("X-Request-Id", requestId)
  if (!hop.fromPeer) {
    const ip = clientIp(req)
    // No address (the node's own replay) starts no chain; a chain the client sent always gets the hop that sent it,
    // "unknown" at worst (RFC 7239's word), so the client's own last entry never passes for it.
    if (forwardedFor !== undefined)
      out.push("X-Forwarded-For", `${forwardedFor}, ${ip === "" ? "unknown" : ip}`)
    else if (ip !== "") out.push("X-Forwarded-For", ip)
    out.push("X-Forwarded-Proto", (req.socket as TLSSocket).encrypted === true ? "https" : "http")
    if (req.headers.host !== undefined) out.push("X-Forwarded-Host", req.headers.host)
  }
  return out
}

/** A response head as Node's client gives it (an IncomingMessage) or as the tunnel's connections read it. */
export interface ResponseHead {
  readonly statusCode?: number | undefined
  readonly statusMessage?: string | undefined
  readonly rawHeaders: ReadonlyArray<string>
}

/** The values of every `Connection` header of a raw list, joined as Node joins them; undefined without one. */
const connectionHeader = (raw: ReadonlyArray<string>): string | undefined => {
  let value: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    if (name.length === 10 && name.toLowerCase() === "connection")
      value = value === undefined ? raw[i + 1] : `${value}, ${raw[i + 1]}`
  }
  return value
}

/**
 * The upstream response's headers minus hop-by-hop ones, as a flat raw list (two Set-Cookie stay two). A service's
 * (`fromService`, not a peer node's) also loses x-pico-error: only Pico speaks for Pico, and a node that forwarded
 * the request would take a service's 503 with `endpoint not found` for a stale route of its own.
 */
export const clientResponseHeaders = (
  res: ResponseHead,
  closeConnection: boolean,
  fromService: boolean,
): Array<string> => {
  const raw = res.rawHeaders
  const listed = connectionListed(connectionHeader(raw))
  const out: Array<string> = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    const lower = name.toLowerCase()
    if (hopByHop.has(lower) || listed?.has(lower) === true || (fromService && lower === picoErrorHeader))
      continue
    out.push(name, raw[i + 1] as string)
  }
  // While draining, ask clients to reconnect (through the load balancer) to a node that is staying.
  if (closeConnection) out.push("Connection", "close")
  return out
}

/** Serialises a response head for a raw connection: the upstream's 101, whose headers all belong to the switch. */
export const responseHead = (res: ResponseHead): string => {
  const raw = res.rawHeaders
  let head = `HTTP/1.1 ${res.statusCode} ${res.statusMessage}\r\n`
  for (let i = 0; i < raw.length; i += 2) head += `${raw[i]}: ${raw[i + 1]}\r\n`
  return `${head}\r\n`
}
