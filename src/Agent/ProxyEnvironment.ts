import * as net from "node:net"
import * as Either from "effect/Either"
import { unbracketed } from "../Domain/Address.js"
import { withoutCredentials } from "../internal/UrlCredentials.js"

/** The forward proxy to reach the server through, and the variable that named it (for logs and errors). */
export interface ProxySetting {
  readonly url: URL
  readonly variable: string
}

type Environment = Readonly<Record<string, string | undefined>>

/** curl's order: the lower-case name wins when both are set. */
const lookup = (
  env: Environment,
  name: string,
): { readonly variable: string; readonly value: string } | undefined => {
  for (const variable of [name.toLowerCase(), name.toUpperCase()]) {
    const value = env[variable]?.trim()
    if (value !== undefined && value !== "") return { variable, value }
  }
  return undefined
}

/** One NO_PROXY entry, matched against the server's host and port. */
const entryWithPort = /^(\[[^\]]+\]|[^:]+):(\d+)$/

/** A NO_PROXY entry's host part: a name, an address or a CIDR range, without its port and brackets. */
const hostPattern = (entry: string): string => {
  const withPort = entryWithPort.exec(entry)
  return unbracketed(withPort === null ? entry : (withPort[1] as string))
}

const entryMatches = (entry: string, host: string, port: number): boolean => {
  if (entry === "*") return true
  // A port, if given, must match too: "example.com:8001", "[::1]:8001", "10.0.0.1:8001".
  const withPort = entryWithPort.exec(entry)
  if (withPort !== null && Number(withPort[2]) !== port) return false
  const pattern = hostPattern(entry)
  const slash = pattern.indexOf("/")
  if (slash > 0) {
    // CIDR: "10.0.0.0/8", "fd00::/8".
    const family = net.isIP(host)
    const network = pattern.slice(0, slash)
    const prefix = pattern.slice(slash + 1)
    if (family === 0 || net.isIP(network) !== family) return false
    // A range that is not one ("10/8", "10.0.0.0/99") matches nothing, as curl ignores it; BlockList would throw.
    if (!/^\d+$/.test(prefix) || Number(prefix) > (family === 6 ? 128 : 32)) return false
    const blocks = new net.BlockList()
    blocks.addSubnet(network, Number(prefix), family === 6 ? "ipv6" : "ipv4")
    return blocks.check(host, family === 6 ? "ipv6" : "ipv4")
  }
  // A name matches itself and its subdomains, with or without a leading "." or "*." (as curl reads it).
  const name = pattern.replace(/^\*?\./, "")
  return host === name || host.endsWith(`.${name}`)
}

/**
 * The forward proxy for connections to `serverUrl`, read from the environment as curl reads it: HTTPS_PROXY for
 * an https/wss server, HTTP_PROXY for http/ws (each also lower-case), unless NO_PROXY lists the server's host
 * (a name also covers its subdomains; IP addresses, CIDR ranges, an optional :port, or * for every host).
 * Undefined when no proxy applies; Left with a one-line problem when the variable holds no usable http:// URL.
 */
export const proxyFromEnvironment = (
  serverUrl: string,
  env: Environment,
): Either.Either<ProxySetting | undefined, string> => {
  const server = new URL(serverUrl)
  const secure = server.protocol === "https:" || server.protocol === "wss:"
  const found = lookup(env, secure ? "https_proxy" : "http_proxy")
  if (found === undefined) return Either.right(undefined)

  const host = unbracketed(server.hostname.toLowerCase()).replace(/\.$/, "")
  const port = server.port === "" ? (secure ? 443 : 80) : Number(server.port)
  const noProxy =
    lookup(env, "no_proxy")
      ?.value.toLowerCase()
      .split(/[\s,]+/) ?? []
  if (noProxy.some((entry) => entry !== "" && entryMatches(entry, host, port))) return Either.right(undefined)

  // "proxy.internal:3128" means http://proxy.internal:3128, as in curl.
  const text = found.value.includes("://") ? found.value : `http://${found.value}`
  // The value may carry credentials (http://user:password@proxy): an error never shows them.
  const problem = `${found.variable} ${JSON.stringify(withoutCredentials(found.value))}`
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return Either.left(`${problem}: expected a proxy URL such as http://proxy.internal:3128`)
  }
  if (url.protocol !== "http:") {
    return Either.left(
      `${problem}: only http:// proxies are supported (the tunnel's TLS runs inside CONNECT)`,
    )
  }
  return Either.right({ url, variable: found.variable })
}
