import type { ClientRequestArgs } from "node:http"
import * as net from "node:net"
import type { Duplex } from "node:stream"
import * as tls from "node:tls"
import { unbracketed } from "../../Domain/Address.js"
import { urlCredentials } from "../../internal/UrlCredentials.js"

/** The proxy's answer head is a status line and a few headers; anything longer is not a proxy talking. */
const MAX_ANSWER_HEAD = 16 * 1024

/** Where a CONNECT goes: `host:port`, with an IPv6 literal in brackets. */
const authority = (host: string, port: number | string): string =>
  `${net.isIPv6(host) ? `[${host}]` : host}:${port}`

/** The proxy as logs may show it: its address, never the credentials in its URL. */
export const describeProxy = (proxy: URL): string => `${proxy.protocol}//${proxy.host}`

const connectRequest = (target: string, proxy: URL): string => {
  const userInfo = urlCredentials(proxy)
  const credentials =
    userInfo === undefined ? "" : `Proxy-Authorization: Basic ${Buffer.from(userInfo).toString("base64")}\r\n`
  return `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${credentials}\r\n`
}

type Oncreate = (error: Error | null, socket: Duplex) => void

/** Connections through one http:// forward proxy, for one request. */
export interface ProxyConnector {
  /** For http.request's options: reaches the target through the proxy's CONNECT. */
  readonly createConnection: NonNullable<ClientRequestArgs["createConnection"]>
  /**
   * While the proxy is being connected to or has not answered CONNECT: what a request timing out now is waiting
   * for (the proxy, not the target), as a message.
   */
  readonly waitingFor: () => string | undefined
  /** Closes the connections to the proxy that have not been handed over yet: the request was given up. */
  readonly abort: () => void
}

/**
 * Reaches the target through an http:// forward proxy: asks the proxy to CONNECT to it, then hands over the
 * tunnel, wrapped in TLS for a secure target so that TLS runs end to end between us and the target (the proxy
 * only relays the bytes it cannot read).
 */
export const connectThroughProxy = (proxy: URL, secure: boolean, timeoutMs: number): ProxyConnector => {
  let waiting: string | undefined
  const connecting = new Set<net.Socket>()
  const createConnection: ProxyConnector["createConnection"] = (options, oncreate: Oncreate) => {
    const host = options.host ?? "localhost"
    const port = options.port ?? (secure ? 443 : 80)
    const target = authority(host, port)
    const socket = net.connect(Number(proxy.port === "" ? 80 : proxy.port), unbracketed(proxy.hostname))
    connecting.add(socket)
    let head = Buffer.alloc(0)
    let settled = false

    const fail = (reason: string) => {
      if (settled) return
      settled = true
      waiting = undefined
      connecting.delete(socket)
      socket.destroy()
      oncreate(new Error(`proxy ${describeProxy(proxy)}: ${reason}`), socket)
    }
    const tunnelled = (rest: Buffer) => {
      settled = true
      waiting = undefined
      connecting.delete(socket)
      socket.setTimeout(0)
      socket.off("readable", onReadable)
      socket.off("error", onError)
      socket.off("end", onEnd)
      socket.off("timeout", onTimeout)
      // Bytes the target sent right behind the proxy's answer belong to whoever reads the tunnel next.
      if (rest.length > 0) socket.unshift(rest)
      if (!secure) return oncreate(null, socket)
      // The request's options carry the TLS ones too (ca, cert, key, servername), as in a direct connection.
      const tlsOptions = options as tls.ConnectionOptions
      const servername = tlsOptions.servername ?? (net.isIP(host) === 0 ? host : "")
      oncreate(null, tls.connect({ ...tlsOptions, path: undefined, socket, servername }))
    }
    // "readable" rather than "data": once this listener is gone the socket is no longer flowing, so nothing the
    // target sends is lost before the HTTP client (or TLS) starts reading.
    const onReadable = () => {
      for (let chunk: Buffer | null = socket.read(); chunk !== null; chunk = socket.read()) {
        head = Buffer.concat([head, chunk])
      }
      const end = head.indexOf("\r\n\r\n")
      if (end < 0) {
        if (head.length > MAX_ANSWER_HEAD) fail("not an HTTP answer to CONNECT")
        return
      }
      const statusLine = head.subarray(0, head.indexOf("\r\n")).toString("latin1")
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1]
      if (status === undefined) return fail("not an HTTP answer to CONNECT")
      if (!status.startsWith("2")) {
        return fail(`refused CONNECT ${target}: ${statusLine.slice(statusLine.indexOf(" ") + 1)}`)
      }
      tunnelled(head.subarray(end + 4))
    }
    const onError = (error: Error) => fail(error.message)
    const onEnd = () => fail(`closed the connection before answering CONNECT ${target}`)
    const unanswered = `no answer to CONNECT ${target} within ${timeoutMs}ms`
    const onTimeout = () => fail(unanswered)

    socket.setTimeout(timeoutMs)
    socket.on("readable", onReadable)
    socket.on("error", onError)
    socket.on("end", onEnd)
    socket.on("timeout", onTimeout)
    waiting = `proxy ${describeProxy(proxy)}: no connection within ${timeoutMs}ms`
    socket.once("connect", () => {
      waiting = `proxy ${describeProxy(proxy)}: ${unanswered}`
      socket.write(connectRequest(target, proxy))
    })
    return undefined
  }
  const abort = () => {
    for (const socket of connecting) socket.destroy()
    connecting.clear()
  }
  return { createConnection, waitingFor: () => waiting, abort }
}
