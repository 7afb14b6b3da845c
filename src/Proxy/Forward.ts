import * as http from "node:http"
import * as https from "node:https"
import type { Socket } from "node:net"
import type { Duplex } from "node:stream"
import { Effect } from "effect"
import type { HostPort } from "../Domain/Address.js"
import type { EndpointId } from "../Domain/EndpointId.js"
import type { EndpointKind } from "../Domain/EndpointKind.js"
import type { Recording } from "../Inspector/Recording.js"
import { ProxyError, picoErrorHeader } from "./Errors.js"
import { clientResponseHeaders, type ResponseHead, responseHead } from "./Headers.js"

/** A request without a body can be sent again when a kept-alive stream turns out to be closed already. */
export const hasNoBody = (req: http.IncomingMessage): boolean =>
  req.headers["transfer-encoding"] === undefined &&
  (req.headers["content-length"] === undefined || req.headers["content-length"] === "0")

/**
 * Methods a request can be sent again with once it may have reached a service (RFC 9110 §9.2.2): running one twice
 * has the effect of running it once. A POST or a PATCH is sent again only if it cannot have left, as nginx does.
 */
const idempotentMethods: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"])

export const isIdempotent = (req: http.IncomingMessage): boolean => idempotentMethods.has(req.method ?? "")

/** How long connecting to a peer node may take before the next node is tried: nodes share a network. */
const PEER_CONNECT_TIMEOUT_MS = 3_000

/** One try at sending the request: through which pool of connections, with which headers. */
export interface Attempt {
  /** The pool of connections to a peer node; none for a tunnel, where `createConnection` opens a stream. */
  readonly agent?: http.Agent
  readonly createConnection?: () => Duplex
  /** The peer node to send to; undefined for a tunnel, whose agent already knows where its streams go. */
  readonly target?: HostPort
  /** The target speaks TLS (then `agent` is an https.Agent). */
  readonly tls?: boolean
  readonly headers: ReadonlyArray<string>
  /**
   * Send `Expect: 100-continue` and hold the body until the target agrees: a peer node that no longer has the
   * endpoint then answers before any of the body is spent, so the request can still go elsewhere.
   */
  readonly expectContinue: boolean
}

/**
 * Why an attempt can be retried — in every case no byte of the body has been spent, and the request either cannot
 * have reached a service or is idempotent (isIdempotent):
 * - "stale connection": a pooled connection turned out closed (only for requests without a body);
 * - "connection failed": the target could not be reached;
 * - "stale route": a peer node answered that it no longer has the endpoint.
 */
export type RetryReason = "stale connection" | "connection failed" | "stale route"

export type AttemptOutcome =
  | { readonly _tag: "Done" }
  | { readonly _tag: "Retry"; readonly reason: RetryReason; readonly detail: string }

/** The one "Done" outcome: an attempt that ended (well or not) allocates nothing more to say so. */
export const done: AttemptOutcome = { _tag: "Done" }

/** The client's side of an upgrade request: its raw connection and what should happen once the upstream agrees. */
export interface UpgradeTarget {
  readonly socket: Duplex
  /** Bytes the client sent past its request head. */
  readonly head: Buffer
  /**
   * Called with the upstream connection once both sides have switched protocols; `local` when it runs through
   * this node's own tunnel, not on to a peer node.
   */
  readonly switched: (upstream: Duplex, local: boolean) => void
}

/** Which way an exchange went: through an upstream of this node, or to the peer node holding the endpoint. */
export type Route = "local" | "forwarded"

/** One client request being forwarded, across however many attempts it takes. */
export interface Exchange {
  /**
   * What the client asks for: a TCP connection (a pico-tcp upgrade), or HTTP (anything else); "http" until the
   * upgrade has been read.
   */
  kind: EndpointKind
  readonly req: http.IncomingMessage
  readonly res: http.ServerResponse
  readonly upgrade: UpgradeTarget | undefined
  /** Milliseconds to wait for response headers once the body has been sent. */
  readonly gatewayTimeout: number
  /** Epoch ms after which no further attempt starts and none may still be connecting. */
  readonly routeDeadline: number
  /** Milliseconds a request body may pause between two reads before the exchange gives up. */
  readonly idleTimeout: number
  /** Whether the response should close the client connection (the node is draining). */
  readonly closeConnection: () => boolean
  /** Set once a byte of the body has gone to a target: from then on it cannot be retried elsewhere. */
  bodySpent: boolean

  // --- What the access log and the capture report; plain fields, so observing costs no allocation ---

  /** Epoch ms and performance.now() when the request arrived. */
  readonly startedAt: number
  readonly started: number
  /** The request's x-request-id, kept or generated (Proxy/RequestId.ts); "" until known. */
  requestId: string
  endpointId: EndpointId | undefined
  /** Whether bytes are counted (for the access log); without it and a capture, bodies pass untouched. */
  readonly observed: boolean
  /** Body bytes read from the client, and written to it (after an upgrade: bytes piped each way). */
  bytesIn: number
  bytesOut: number
  /** Milliseconds from sending the request to the target that answered until its response head; -1: none. */
  upstreamMs: number
  route: Route | undefined
  /** The upstream's address (route "local") or the peer's node id ("forwarded") the last attempt went to. */
  via: string
  /** Why Pico answered itself (a ProxyFailure or AuthError reason), if it did. */
  failure: string | undefined
  /** The recording of this exchange when its endpoint is being captured (see Inspector). */
  capture: Recording | undefined
  /** The request carries a valid proof that a node of the cluster forwarded it (PeerProof). */
  provenPeer: boolean
  /** The node that forwarded the request here ("unknown" if it gave no valid id); undefined: a client's own. */
  fromNode: string | undefined
  /** The captured request this one replays, when the node's own replay sent it; never a client's say. */
  replayOf: string | undefined
}

/** A new exchange for `req`, timed from now, before anything is known of where it goes. */
export const newExchange = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  upgrade: UpgradeTarget | undefined,
  timeouts: { readonly gatewayTimeout: number; readonly idleTimeout: number },
  closeConnection: () => boolean,
  observed = false,
): Exchange => {
  const startedAt = Date.now()
  return {
    kind: "http",
    req,
    res,
    upgrade,
    gatewayTimeout: timeouts.gatewayTimeout,
    routeDeadline: startedAt + timeouts.gatewayTimeout,
    idleTimeout: timeouts.idleTimeout,
    closeConnection,
    bodySpent: false,
    startedAt,
    started: performance.now(),
    requestId: "",
    endpointId: undefined,
    observed,
    bytesIn: 0,
    bytesOut: 0,
    upstreamMs: -1,
    route: undefined,
    via: "",
    failure: undefined,
    capture: undefined,
    provenPeer: false,
    fromNode: undefined,
    replayOf: undefined,
  }
}

/**
 * Starts the client's response with the upstream's head, minus hop-by-hop headers. A response that comes before the
 * client has finished sending closes the client connection after it: the rest of that body must not be read as a
 * next request.
 */
export const relayHead = (exchange: Exchange, head: ResponseHead, sentAt: number): void => {
  const { req, res } = exchange
  exchange.upstreamMs = performance.now() - sentAt
  exchange.capture?.response(head)
  const close = exchange.closeConnection() || exchange.upgrade !== undefined || !req.complete
  res.writeHead(
    head.statusCode ?? 502,
    reasonPhrase(head.statusMessage),
    clientResponseHeaders(head, close, exchange.route === "local"),
  )
}

/** What Node refuses to write in a status line: control characters other than tab. */
const invalidReasonCharacter = /[^\t\x20-\x7e\x80-\xff]/

/**
 * The upstream's reason phrase, or none (Node then writes the status's own) when it holds a character Node would
 * refuse: clients ignore the phrase (RFC 9112 §4), and one service's odd status line must not throw.
 */
const reasonPhrase = (message: string | undefined): string | undefined =>
  message === undefined || invalidReasonCharacter.test(message) ? undefined : message

/**
 * The upstream's response broke after its head: the client must see a broken connection, not a short "complete"
 * body, and the access log says why its status was not the whole story. (A client that left is not a cut.)
 */
export const cutResponse = (exchange: Exchange): void => {
  const { res } = exchange
  if (res.destroyed) return
  exchange.failure = "response cut"
  res.destroy()
}

/** The client's connection has closed: nothing more is sent on its behalf, since no one would get the answer. */
export const clientGone = (exchange: Exchange): boolean => exchange.req.socket.destroyed

/** Counts (and captures) the request body as it is read, when the access log or a capture wants it. */
export const observeRequestBody = (exchange: Exchange): void => {
  if (exchange.observed || exchange.capture !== undefined)
    exchange.req.on("data", (chunk: Buffer) => {
      exchange.bytesIn += chunk.length
      exchange.capture?.addRequestBody(chunk)
    })
}

/** Counts (and captures) the response body as it is written, when the access log or a capture wants it. */
export const observeResponseBody = (exchange: Exchange, chunk: Buffer): void => {
  exchange.bytesOut += chunk.length
  exchange.capture?.addResponseBody(chunk)
}

/**
 * What Node's client lets through but the proxy refuses, as on the tunnel's own reader (HttpConnections): a status
 * under 100, which Node's server cannot write, and a body in a transfer coding other than chunked alone, which
 * would reach the client unannounced once the hop-by-hop header is dropped.
 */
const invalidResponse = (res: http.IncomingMessage, method: string | undefined): string | undefined => {
  const status = res.statusCode ?? 0
  if (status < 100) return `invalid status code ${status}`
  const codings = res.headers["transfer-encoding"]
  // A response without a body (to HEAD, a 204 or 304) may name the coding its body would have had.
  return codings === undefined ||
    codings.toLowerCase() === "chunked" ||
    method === "HEAD" ||
    status === 204 ||
    status === 304
    ? undefined
    : `unsupported transfer coding ${JSON.stringify(codings)}`
}

const isStaleRoute = (res: http.IncomingMessage): boolean =>
  res.statusCode === 503 && res.headers[picoErrorHeader] === "endpoint not found"

/**
 * Sends the request once and streams the response back. Node's HTTP client does the HTTP/1.1 framing, so bodies
 * flow in both directions with backpressure and nothing is buffered whole. An upgrade request becomes a byte
 * pipe only when the upstream answers 101; any other answer is relayed and the client connection then closed,
 * so nothing the client sends after it is ever read as a new request. Fails only before the response has
 * started; after that a broken upstream can only cut the client connection.
 */
export const attempt = (exchange: Exchange, target: Attempt): Effect.Effect<AttemptOutcome, ProxyError> =>
  Effect.async<AttemptOutcome, ProxyError>((resume) => {
    const { req, res, upgrade } = exchange
    let settled = false
    let timer: NodeJS.Timeout | undefined
    const settle = (outcome: Effect.Effect<AttemptOutcome, ProxyError>) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resume(outcome)
    }
    // Pico answers for a failed attempt: the request is let go, or a late answer (a peer's 100 Continue, its
    // response) would be relayed onto a client already answered.
    const fail = (reason: ProxyError["reason"], detail?: string) => {
      upstreamReq.destroy()
      settle(Effect.fail(new ProxyError(detail === undefined ? { reason } : { reason, detail })))
    }
    const bodiless = hasNoBody(req)
    const sentAt = performance.now()

    const upstreamReq = (target.tls === true ? https.request : http.request)({
      method: req.method,
      path: req.url,
      headers: target.headers as Array<string>,
      agent: target.agent,
      createConnection: target.createConnection,
      ...(target.target === undefined ? {} : { host: target.target.host, port: target.target.port }),
    })
    const retryOrFail = (reason: RetryReason, detail: string) => {
      if (exchange.bodySpent) return fail("upstream unreachable", detail)
      upstreamReq.destroy()
      settle(Effect.succeed({ _tag: "Retry", reason, detail }))
    }

    // Until the body has been sent, the route deadline bounds connecting and waiting for a peer's 100 Continue.
    const untilDeadline = exchange.routeDeadline - Date.now()
    timer = setTimeout(
      () => fail("endpoint timeout", "no route answered in time"),
      Math.max(0, untilDeadline),
    )
    /** Whether the request can have left: its connection was already open (a kept-alive one) or has opened. */
    let connected = false
    upstreamReq.once("socket", (socket: Socket) => {
      connected = socket.connecting !== true
      // Only a new connection connects: a kept-alive one would collect a listener per request.
      if (!connected)
        socket.once("connect", () => {
          connected = true
        })
      if (target.target === undefined || !socket.connecting) return
      const connectTimer = setTimeout(
        () => retryOrFail("connection failed", "connect timed out"),
        Math.min(PEER_CONNECT_TIMEOUT_MS, Math.max(0, untilDeadline)),
      )
      socket.once("connect", () => clearTimeout(connectTimer))
      socket.once("close", () => clearTimeout(connectTimer))
    })
    // The gateway timeout counts from the moment the whole request has been sent, not from its first byte.
    upstreamReq.once("finish", () => {
      if (settled) return
      clearTimeout(timer)
      timer = setTimeout(() => {
        const from =
          target.target === undefined ? "the upstream" : `${target.target.host}:${target.target.port}`
        fail("endpoint timeout", `no response headers from ${from} within ${exchange.gatewayTimeout}ms`)
      }, exchange.gatewayTimeout)
    })

    upstreamReq.on("response", (upstreamRes) => {
      if (target.target !== undefined && !exchange.bodySpent && isStaleRoute(upstreamRes))
        return retryOrFail("stale route", "peer no longer has the endpoint")
      const invalid = invalidResponse(upstreamRes, req.method)
      if (invalid !== undefined) return fail("upstream unreachable", invalid)
      clearTimeout(timer)
      relayHead(exchange, upstreamRes, sentAt)
      upstreamRes.on("error", () => cutResponse(exchange))
      upstreamRes.on("aborted", () => cutResponse(exchange))
      if (exchange.observed || exchange.capture !== undefined)
        upstreamRes.on("data", (chunk: Buffer) => observeResponseBody(exchange, chunk))
      upstreamRes.pipe(res)
    })
    if (upgrade !== undefined) {
      upstreamReq.on(
        "upgrade",
        (upstreamRes: http.IncomingMessage, upstream: Duplex, upstreamHead: Buffer) => {
          clearTimeout(timer)
          exchange.upstreamMs = performance.now() - sentAt
          exchange.capture?.response(upstreamRes)
          res.detachSocket(upgrade.socket as Socket)
          upgrade.socket.write(responseHead(upstreamRes))
          if (upstreamHead.length > 0) upgrade.socket.write(upstreamHead)
          if (upgrade.head.length > 0) upstream.write(upgrade.head)
          upgrade.switched(upstream, target.target === undefined)
          settle(Effect.succeed(done))
        },
      )
    }
    upstreamReq.on("error", (error) => {
      if (settled) return
      if (res.headersSent) {
        cutResponse(exchange)
        settle(Effect.succeed(done))
      } else if (!exchange.bodySpent && (!connected || isIdempotent(req)))
        retryOrFail(
          bodiless && upstreamReq.reusedSocket ? "stale connection" : "connection failed",
          error.message,
        )
      else fail("upstream unreachable", error.message)
    })

    const sendBody = () => {
      // From here the upload is bounded by the pause between reads (watchBodyIdle), then by the gateway timeout.
      clearTimeout(timer)
      exchange.bodySpent = true
      watchBodyIdle(
        exchange,
        upstreamReq,
        () => fail("request body timeout"),
        () => fail("endpoint timeout"),
      )
      // Added in the same tick as the pipe, so neither misses a chunk.
      observeRequestBody(exchange)
      req.pipe(upstreamReq)
    }
    if (bodiless) upstreamReq.end()
    else if (target.expectContinue) {
      upstreamReq.once("continue", sendBody)
      upstreamReq.flushHeaders()
    } else {
      // Only once a connection is assigned: a tunnel that closed in between fails before any body is read.
      upstreamReq.once("socket", sendBody)
    }

    // A client that goes away resets the upstream stream, so the upstream stops work on the request too.
    res.on("close", () => {
      if (!res.writableFinished) upstreamReq.destroy()
      settle(Effect.succeed(done))
    })
    res.on("finish", () => settle(Effect.succeed(done)))
    req.on("error", () => upstreamReq.destroy())
    return Effect.sync(() => {
      clearTimeout(timer)
      upstreamReq.destroy()
    })
  })

/**
 * Bounds a body by the gap between two reads, not by its total time. When the gap runs out, whoever stalled is
 * blamed: the client (408) if we were waiting to read, the upstream (504) if it had stopped taking bytes.
 */
export const watchBodyIdle = (
  exchange: Exchange,
  upstream: { readonly writableNeedDrain: boolean; destroy(): void },
  clientStalled: () => void,
  upstreamStalled: () => void,
) => {
  const { req } = exchange
  if (req.complete) return
  const idle = setTimeout(() => {
    upstream.destroy()
    if (upstream.writableNeedDrain) upstreamStalled()
    else clientStalled()
    // The rest of the body will never be read: this connection carries no further request.
    exchange.res.once("finish", () => req.socket.destroy())
  }, exchange.idleTimeout)
  const stop = () => clearTimeout(idle)
  req.on("data", () => idle.refresh())
  req.once("end", stop)
  req.once("close", stop)
}
