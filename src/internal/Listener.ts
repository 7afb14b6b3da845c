import type * as http from "node:http"
import { type AddressInfo, Server as NetServer, type Socket } from "node:net"
import type { Duplex } from "node:stream"
import { Duration, Effect, type Scope } from "effect"
import type { HostPort } from "../Domain/Address.js"
import type { ConfigError } from "../PicoConfig/ConfigError.js"
import type { TlsFiles } from "../PicoConfig/KeyMaterial.js"
import * as ConnectionGuard from "./ConnectionGuard.js"
import { type HttpServer, makeHttpServer } from "./HttpServer.js"
import { errorBody, writeJson, writeJsonToSocket } from "./JsonResponse.js"
import { formatAddressInfo, type ListenError, listen } from "./Listen.js"

/** How long clients may take and how many may connect: the limits every listener puts on its clients. */
export interface ClientLimits {
  /** Time to receive a complete request head, counted from the connection or from a later request's first byte. */
  readonly readHeaderTimeout: Duration.DurationInput
  /** Time a connection may sit with no request in flight (keep-alive, or silent), and between reads of a body. */
  readonly idleTimeout: Duration.DurationInput
  /** Open connections at most; past it the oldest idle one is closed to make room, or the newcomer refused. */
  readonly maxConnections: number
}

/** The documented defaults of --<port>.read-header-timeout, --<port>.idle-timeout and a proxy's connection cap. */
export const defaultClientLimits: ClientLimits = {
  readHeaderTimeout: "10 seconds",
  idleTimeout: "60 seconds",
  maxConnections: 10_000,
}

export interface ListenerOptions {
  /** The port's name in logs, metrics and errors: "proxy", "upstream" or "admin". */
  readonly name: "proxy" | "upstream" | "admin"
  readonly address: HostPort
  readonly tls: TlsFiles | undefined
  readonly limits: ClientLimits
  /** Extra Node server options (e.g. socket buffer sizes). */
  readonly server?: http.ServerOptions
}

/** A bound HTTP listener with its client limits in force. */
export interface Listener {
  readonly server: HttpServer
  readonly address: AddressInfo
  readonly guard: ConnectionGuard.ConnectionGuard
  /**
   * Stops accepting new connections and closes kept-alive ones as soon as they wait for a next request. Open
   * exchanges carry on, and so do connections accepted whose first request has not been read yet.
   */
  readonly stopAccepting: Effect.Effect<void>
}

/** The checks Node runs for header timeouts are this often; a tenth of the timeout keeps enforcement close. */
const checkingInterval = (readHeaderTimeout: number): number =>
  Math.max(100, Math.min(1000, Math.floor(readHeaderTimeout / 10)))

/** What a request that Node's parser refused gets, by the parser's error code. */
const refusal = (error: NodeJS.ErrnoException): { readonly status: number; readonly message: string } => {
  switch (error.code) {
    case "HPE_HEADER_OVERFLOW":
      return { status: 431, message: "request header fields too large" }
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return { status: 408, message: "request header timeout" }
    default:
      return { status: 400, message: `malformed request: ${error.message.replace(/^Parse Error: /, "")}` }
  }
}

/**
 * Whether the connection still owes the response to a request before this upgrade, pipelined behind it. Node hands
 * the upgrade over all the same, but no response can be bound to the connection until that one has ended (Node
 * throws), so the connection is cut instead: a client that pipelines an upgrade gets neither.
 */
export const owesEarlierResponse = (socket: Duplex): boolean =>
  ((socket as Socket & { _httpMessage?: http.ServerResponse | null })._httpMessage ?? null) !== null

/** Responses whose request Node's parser refused midway (in its body), by the status the client got instead. */
const refusedMidway = new WeakMap<http.ServerResponse, number>()

/** What the client was sent instead of `res`, when Node's parser refused its request after the head. */
export const refusedStatus = (res: http.ServerResponse): number | undefined => refusedMidway.get(res)

/**
 * Answers what Node's parser refused (bad framing, invalid characters, oversized or late headers) with a JSON
 * error before closing, as nginx would, instead of hanging up without a word.
 */
const answerClientError = (error: NodeJS.ErrnoException, socket: Duplex): void => {
  // The response under way, if any: Node leaves null here once a kept-alive connection's response has ended.
  const inResponse = (socket as Socket & { _httpMessage?: http.ServerResponse | null })._httpMessage
  if (error.code !== "ECONNRESET" && socket.writable && inResponse?.headersSent !== true) {
    const { status, message } = refusal(error)
    writeJsonToSocket(socket, status, errorBody(message))
    // A request whose body was refused had a response under way: its books say what the client got.
    if (inResponse != null) refusedMidway.set(inResponse, status)
  }
  socket.destroy()
}

/**
 * Connections that close after the answer to their last request, whatever Node parsed behind it: a request whose
 * framing Pico refuses, or one it does not take at all. Node still hands over requests pipelined behind it, and
 * those must never be served: another parser in front could have framed that connection differently.
 */
const closingConnections = new WeakSet<object>()

export const closeAfterAnswer = (socket: object): void => {
  closingConnections.add(socket)
}

export const closesAfterAnswer = (socket: object): boolean => closingConnections.has(socket)

/** An Expect other than 100-continue, which Node would refuse with a bare 417 (RFC 9110 §10.1.1). */
const refuseExpectation = (req: http.IncomingMessage, res: http.ServerResponse): void => {
  closeAfterAnswer(req.socket)
  res.shouldKeepAlive = false
  writeJson(res, 417, errorBody("unsupported expectation"))
}

/**
 * The skeleton every HTTP port shares: plain or TLS (hot-reloaded certificates), bound for the scope's lifetime,
 * with a header timeout, an idle timeout and a connection cap, and malformed requests answered with JSON.
 */
export const makeListener = (
  options: ListenerOptions,
): Effect.Effect<Listener, ConfigError | ListenError, Scope.Scope> =>
  Effect.gen(function* () {
    const { limits } = options
    const readHeaderTimeout = Duration.toMillis(limits.readHeaderTimeout)
    const server = yield* makeHttpServer(
      options.tls,
      {
        ...options.server,
        // No total request time: a proxied download may stream for hours. The head and idle gaps are bounded.
        requestTimeout: 0,
        headersTimeout: readHeaderTimeout,
        keepAliveTimeout: Duration.toMillis(limits.idleTimeout),
        connectionsCheckingInterval: checkingInterval(readHeaderTimeout),
      },
      options.name,
    )
    // Past 2,000 headers Node 20 keeps the first ones yet frames the body by all of them: a Content-Length (or a
    // Connection list) past the cap would be parsed and then lost, with the body; Node 24 refuses the head. Both
    // take them all this way, and the head's size limit (16 KiB) already bounds how many there can be.
    server.maxHeadersCount = 0
    const guard = yield* ConnectionGuard.make(server, options.name, limits.maxConnections)
    server.on("clientError", answerClientError)
    server.on("checkExpectation", refuseExpectation)
    const address = yield* listen(server, options.address, options.name)
    yield* Effect.logInfo(`${options.name} listening`).pipe(
      Effect.annotateLogs({ subsystem: options.name, addr: formatAddressInfo(address) }),
    )
    return {
      server,
      address,
      guard,
      stopAccepting: Effect.sync(() => {
        // net.Server's close: http.Server's also stops the header timeouts of the connections still open.
        if (server.listening) NetServer.prototype.close.call(server)
        // Node counts a connection whose first request is still unread as busy (its header timer runs), so only
        // kept-alive connections waiting for a next request are closed, now and as others become so.
        guard.closeWhenIdle()
      }),
    }
  })
