import { isIPv4 } from "node:net"
/** A host and port to listen on or dial. An empty host means every interface. */
export interface HostPort {
  readonly host: string
  readonly port: number
}

const isPort = (text: string): boolean => /^\d{1,5}$/.test(text) && Number(text) <= 65535

/**
 * Parses "host:port", ":port" or "[v6]:port". Returns undefined when the text is not an address, so callers can
 * word the error for their own field.
 */
export const parseHostPort = (text: string): HostPort | undefined => {
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(text)
  if (bracketed !== null) {
    return isPort(bracketed[2] as string)
      ? { host: bracketed[1] as string, port: Number(bracketed[2]) }
      : undefined
  }
  const colon = text.lastIndexOf(":")
  if (colon < 0) return undefined
  const host = text.slice(0, colon)
  const port = text.slice(colon + 1)
  if (host.includes(":") || !isPort(port)) return undefined
  return { host, port: Number(port) }
}

/** Hosts that mean "every interface" when bound, and no one in particular when dialled. */
const unspecified = new Set(["", "0.0.0.0", "::"])

/** An address something can be sent to: "host:port" with a host that names one, and a port other than 0. */
export const parseDialAddress = (text: string): HostPort | undefined => {
  const parsed = parseHostPort(text)
  return parsed !== undefined && !unspecified.has(parsed.host) && parsed.port > 0 ? parsed : undefined
}

/** A gossiped "host:port" to dial; a malformed one (a buggy peer) fails to connect, like an unreachable node. */
export const dialAddress = (addr: string): HostPort => parseHostPort(addr) ?? { host: addr, port: 0 }

/** Formats an address the way it is written in flags and status output ("[::1]:8000", "10.0.0.1:8000"). */
export const formatHostPort = ({ host, port }: HostPort): string =>
  host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`

export const addressExpected = 'expected an address such as ":8000" or "127.0.0.1:8000"'

export const bindAddrProblem = (text: string): string | undefined =>
  parseHostPort(text) === undefined ? addressExpected : undefined

/**
 * A peer's host as a dual-stack socket reports it, with an IPv4 client's address unmapped ("::ffff:10.0.0.1" is
 * "10.0.0.1"): the default ":PORT" listeners take IPv4 clients that way.
 */
export const peerHost = (host: string): string =>
  host.startsWith("::ffff:") && isIPv4(host.slice(7)) ? host.slice(7) : host

/** The far end of a connection, formatted as addresses are ("10.0.0.1:41234", "[::1]:41234"). */
export const peerAddress = (socket: {
  readonly remoteAddress?: string | undefined
  readonly remotePort?: number | undefined
}): string => formatHostPort({ host: peerHost(socket.remoteAddress ?? ""), port: socket.remotePort ?? 0 })

/** A host as sockets take it: an IPv6 literal without the brackets a URL puts around it. */
export const unbracketed = (host: string): string => host.replace(/^\[(.*)\]$/, "$1")
