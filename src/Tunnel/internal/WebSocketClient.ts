import { randomBytes } from "node:crypto"
import type * as http from "node:http"
import type { Duplex } from "node:stream"
import { unbracketed } from "../../Domain/Address.js"
import { requestUpgrade, type UpgradeOutcome } from "../../internal/HttpUpgrade.js"
import { urlCredentials } from "../../internal/UrlCredentials.js"
import { connectThroughProxy } from "./ForwardProxy.js"
import { LentReads } from "./LentReads.js"
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

/**
 * How an opening handshake ended: Open, or as requestUpgrade says. Unreachable also covers a bad URL, a timeout
 * and a 101 that is not a WebSocket's.
 */
export type HandshakeOutcome =
  /**
   * Switched protocols: the socket now carries WebSocket frames; `head` is what was read past the answer. A plain
   * TCP connection of our own comes with `lentReads`, to be taken at once (see LentReads).
   */
  | {
      readonly _tag: "Open"
      readonly socket: Duplex
      readonly head: Buffer
      readonly lentReads: LentReads | undefined
    }
  | Extract<UpgradeOutcome, { readonly _tag: "Refused" | "Unreachable" }>

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
  const proxy =
    options.proxy === undefined ? undefined : connectThroughProxy(options.proxy, secure, options.timeoutMs)
  const host = unbracketed(url.hostname)
  const port = url.port === "" ? defaultPort : Number(url.port)
  // Only a plain connection is our own: over TLS Node's agent connects (SNI, CA, client certificate), and a proxy's
  // CONNECT makes its own connection. Those read the usual way.
  let lentReads: LentReads | undefined
  const connection =
    proxy !== undefined
      ? { createConnection: proxy.createConnection }
      : secure
        ? {}
        : {
            createConnection: () => {
              lentReads = new LentReads(host, port)
              return lentReads.socket
            },
          }
  return requestUpgrade(
    {
      secure,
      request: {
        host,
        port,
        // A connection of our own (a proxy's, or a plain one) means no agent, and without one Node knows no default
        // port: it would write it into Host, where front ends that match the host exactly would not recognise it.
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
        // Directly over TLS, Node's own agent connects (with SNI for a host name); through a proxy, our CONNECT.
        ...connection,
      },
      timeoutMs: options.timeoutMs,
      invalidAnswer: (response) => invalidAnswer(response, key),
      givenUp: proxy?.abort,
    },
    (outcome) => {
      switch (outcome._tag) {
        case "Switched":
          return done({ _tag: "Open", socket: outcome.socket, head: outcome.head, lentReads })
        case "TimedOut":
          return done({
            _tag: "Unreachable",
            message: proxy?.waitingFor() ?? `opening handshake timed out after ${options.timeoutMs}ms`,
          })
        default:
          return done(outcome)
      }
    },
  )
}
