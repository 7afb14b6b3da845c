import { randomBytes } from "node:crypto"
import * as http from "node:http"
import * as https from "node:https"
import type { Duplex } from "node:stream"
import { unbracketed } from "../../Domain/Address.js"
import { readRefusal } from "../../internal/Refusal.js"
import { urlCredentials } from "../../internal/UrlCredentials.js"
import { connectThroughProxy } from "./ForwardProxy.js"
import { acceptValue } from "./WebSocketHandshake.js"

/** TLS for wss:// connections: a CA to trust (PEM) and a client certificate to present (mTLS). */
export interface ClientTls {
  readonly ca?: Buffer
  readonly cert?: Buffer
  readonly key?: Buffer
}

export interface WebSocketClientOptions {
  /** ws:// or wss:// (http:// and https:// mean the same); credentials in it are sent as Basic auth. */
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly tls?: ClientTls | undefined
  /** An http:// forward proxy to reach the server through (CONNECT); TLS stays end to end for wss. */
  readonly proxy?: URL | undefined
  /** How long the connection and the handshake may take, the proxy's CONNECT included. */
  readonly timeoutMs: number
}

/** How an opening handshake ended. */
export type HandshakeOutcome =
  /** Switched protocols: the socket now carries WebSocket frames; `head` is what was read past the answer. */
  | { readonly _tag: "Open"; readonly socket: Duplex; readonly head: Buffer }
  /** The server answered with another status: its JSON `error` or status line, and its headers. */
  | {
      readonly _tag: "Refused"
      readonly status: number
      readonly headers: Record<string, string>
      readonly message: string
    }
  /** No valid answer came: a bad URL, a network or TLS failure, a timeout, or a 101 that is not a WebSocket's. */
  | { readonly _tag: "Unreachable"; readonly message: string; readonly cause?: unknown }

const flatHeaders = (response: http.IncomingMessage): Record<string, string> => {
  const flat: Record<string, string> = {}
  for (const [name, value] of Object.entries(response.headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(", ") : value
  }
  return flat
}

/** What is wrong with a 101 answer to our handshake (RFC 6455 §4.1), if anything. */
const invalidAnswer = (response: http.IncomingMessage, key: string): string | undefined => {
  const { headers } = response
  if (headers.upgrade?.toLowerCase() !== "websocket") return "the answer does not upgrade to websocket"
  if (headers["sec-websocket-accept"] !== acceptValue(key)) return "wrong Sec-WebSocket-Accept in the answer"
  if (headers["sec-websocket-extensions"] !== undefined)
    return "the answer names an extension we did not offer"
  if (headers["sec-websocket-protocol"] !== undefined)
    return "the answer names a subprotocol we did not offer"
  return undefined
}

/**
 * Opens a WebSocket as a client (RFC 6455 §4.1) and hands over the raw socket once the server has switched
 * protocols, so that WebSocketSession reads its frames in place. Nothing else is negotiated: no extension, no
 * subprotocol. `done` is called once. Returns a function that abandons the attempt: it stops the handshake, or,
 * when `done` has already been given an open socket that its caller will now not take, closes that socket.
 */
export const openWebSocket = (
  options: WebSocketClientOptions,
  done: (outcome: HandshakeOutcome) => void,
): (() => void) => {
  const url = URL.canParse(options.url) ? new URL(options.url) : undefined
  const secure = url?.protocol === "wss:" || url?.protocol === "https:"
  if (url === undefined || !(secure || url.protocol === "ws:" || url.protocol === "http:")) {
    done({ _tag: "Unreachable", message: `not a ws:// or wss:// URL: ${options.url}` })
    return () => {}
  }
  const key = randomBytes(16).toString("base64")
  const defaultPort = secure ? 443 : 80
  const auth = urlCredentials(url)
  const request = (secure ? https : http).request({
    host: unbracketed(url.hostname),
    port: url.port === "" ? defaultPort : Number(url.port),
    // Through a proxy there is no agent, and without one Node knows no default port: it would write it into
    // Host, where front ends that match the host exactly would no longer recognise it.
    defaultPort,
    path: `${url.pathname}${url.search}`,
    ...(auth === undefined ? {} : { auth }),
    headers: {
      ...options.headers,
      connection: "Upgrade",
      upgrade: "websocket",
      "sec-websocket-version": "13",
      "sec-websocket-key": key,
    },
    ...options.tls,
    // Directly, Node's own agents connect (TLS with SNI for a host name); through a proxy, our CONNECT.
    ...(options.proxy === undefined
      ? {}
      : { createConnection: connectThroughProxy(options.proxy, secure, options.timeoutMs) }),
  })
  let settled: HandshakeOutcome | undefined
  const settle = (outcome: HandshakeOutcome): void => {
    if (settled !== undefined) return
    settled = outcome
    clearTimeout(timer)
    done(outcome)
  }
  const timer = setTimeout(() => {
    request.destroy()
    settle({ _tag: "Unreachable", message: `opening handshake timed out after ${options.timeoutMs}ms` })
  }, options.timeoutMs)

  request.once("upgrade", (response: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const invalid = invalidAnswer(response, key)
    if (invalid === undefined && settled === undefined) return settle({ _tag: "Open", socket, head })
    socket.destroy()
    if (invalid !== undefined) settle({ _tag: "Unreachable", message: invalid })
  })
  request.once("response", (response: http.IncomingMessage) => {
    const status = response.statusCode ?? 0
    // Once the body is read a kept-alive connection is detached from the request: it must be closed here.
    const connection = response.socket
    if (status === 101) {
      connection.destroy()
      return settle({ _tag: "Unreachable", message: "the answer does not upgrade to websocket" })
    }
    void readRefusal(response).then((message) => {
      connection.destroy()
      settle({ _tag: "Refused", status, headers: flatHeaders(response), message })
    })
  })
  request.once("error", (error) => settle({ _tag: "Unreachable", message: error.message, cause: error }))
  request.end()
  return () => {
    if (settled?._tag === "Open") settled.socket.destroy()
    if (settled !== undefined) return
    // Settled without telling `done`: nobody waits for the outcome any more.
    settled = { _tag: "Unreachable", message: "abandoned" }
    clearTimeout(timer)
    request.destroy()
  }
}
