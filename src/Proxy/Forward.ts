import * as http from "node:http"
import type { Duplex } from "node:stream"
import { Effect } from "effect"
import type { HostPort } from "../Domain/Address.js"
import type { TunnelStream } from "../Tunnel.js"
import { ProxyError, picoErrorHeader } from "./Errors.js"
import { clientResponseHeaders, type HeaderPolicy, requestHead, upstreamRequestHeaders } from "./Headers.js"

export interface ForwardOptions {
  /** Milliseconds to wait for the response headers. */
  readonly gatewayTimeout: number
  /** Whether the response should close the client connection (the node is draining). */
  readonly closeConnection: () => boolean
}

/** A request without a body can be sent again when a kept-alive stream turns out to be closed already. */
export const hasNoBody = (req: http.IncomingMessage): boolean =>
  req.headers["transfer-encoding"] === undefined &&
  (req.headers["content-length"] === undefined || req.headers["content-length"] === "0")

/** One try at sending the request: through which pool of connections, with which headers. */
export interface Attempt {
  readonly agent: http.Agent
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
 * Why an attempt can be retried — in every case no byte of the body has been spent:
 * - "stale connection": a pooled connection turned out closed (only for requests without a body);
 * - "connection failed": the target could not be reached;
 * - "stale route": a peer node answered that it no longer has the endpoint.
 */
export type RetryReason = "stale connection" | "connection failed" | "stale route"

/** Decides whether (and where) to try again; undefined gives up. */
export type Retry = (reason: RetryReason) => Attempt | undefined

const isStaleRoute = (res: http.IncomingMessage): boolean =>
  res.statusCode === 503 && res.headers[picoErrorHeader] === "endpoint not found"

/**
 * Sends a request (retrying as `retry` allows) and streams the response back. Node's HTTP client does the
 * HTTP/1.1 framing, so bodies flow in both directions with backpressure and nothing is buffered whole. Fails
 * only before the response has started; after that a broken upstream can only cut the client connection.
 */
export const exchange = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  options: ForwardOptions,
  first: Attempt,
  retry: Retry,
): Effect.Effect<void, ProxyError> =>
  Effect.async<void, ProxyError>((resume) => {
    let settled = false
    const settle = (outcome: Effect.Effect<void, ProxyError>) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resume(outcome)
    }
    const bodiless = hasNoBody(req)
    let bodySpent = false
    // A client that goes away resets the stream, so the upstream stops work on the request too.
    let clientGone = false

    const retryOrFail = (reason: RetryReason, detail: string) => {
      const next = retry(reason)
      if (next !== undefined) current = send(next)
      else if (reason === "stale route") settle(Effect.fail(new ProxyError({ reason: "endpoint not found" })))
      else settle(Effect.fail(new ProxyError({ reason: "upstream unreachable", detail })))
    }

    const send = (attempt: Attempt): http.ClientRequest => {
      const upstreamReq = http.request({
        method: req.method,
        path: req.url,
        headers: attempt.headers as Array<string>,
        agent: attempt.agent,
        ...(attempt.target === undefined ? {} : { host: attempt.target.host, port: attempt.target.port }),
        ...(attempt.tls === true ? { protocol: "https:" } : {}),
      })
      upstreamReq.on("response", (upstreamRes) => {
        if (!bodySpent && isStaleRoute(upstreamRes)) {
          upstreamReq.destroy()
          return retryOrFail("stale route", "peer no longer has the endpoint")
        }
        clearTimeout(timer)
        res.writeHead(
          upstreamRes.statusCode ?? 502,
          upstreamRes.statusMessage,
          clientResponseHeaders(upstreamRes, options.closeConnection()),
        )
        // Cut mid-body (the session died): the client must see a broken connection, not a short "complete" body.
        upstreamRes.on("error", () => res.destroy())
        upstreamRes.on("aborted", () => res.destroy())
        upstreamRes.pipe(res)
      })
      upstreamReq.on("error", (error) => {
        if (clientGone || settled || current !== upstreamReq) return
        if (res.headersSent) {
          res.destroy()
          settle(Effect.void)
        } else if (bodiless && upstreamReq.reusedSocket) retryOrFail("stale connection", error.message)
        else if (!bodySpent) retryOrFail("connection failed", error.message)
        else settle(Effect.fail(new ProxyError({ reason: "upstream unreachable", detail: error.message })))
      })
      const sendBody = () => {
        bodySpent = true
        req.pipe(upstreamReq)
      }
      if (bodiless) upstreamReq.end()
      else if (attempt.expectContinue) {
        upstreamReq.on("continue", sendBody)
        upstreamReq.flushHeaders()
      } else sendBody()
      return upstreamReq
    }

    const timer = setTimeout(() => {
      current.destroy()
      settle(Effect.fail(new ProxyError({ reason: "endpoint timeout" })))
    }, options.gatewayTimeout)
    let current = send(first)
    res.on("close", () => {
      if (res.writableFinished) return
      clientGone = true
      current.destroy()
      settle(Effect.void)
    })
    res.on("finish", () => settle(Effect.void))
    req.on("error", () => current.destroy())
    return Effect.sync(() => {
      clearTimeout(timer)
      current.destroy()
    })
  })

/** Pipes an upgrade request (e.g. a WebSocket handshake) and everything after it through a tunnel stream. */
export const forwardUpgrade = (
  stream: TunnelStream,
  req: http.IncomingMessage,
  socket: Duplex,
  head: Buffer,
  policy: HeaderPolicy,
): void => {
  stream.write(requestHead(req, upstreamRequestHeaders(req, policy)))
  if (head.length > 0) stream.write(head)
  // Either side failing (client gone, stream reset, session lost) ends both; errors must be handled here or
  // they would be thrown as uncaught.
  socket.on("error", () => stream.destroy())
  stream.on("error", () => socket.destroy())
  socket.on("close", () => stream.destroy())
  stream.on("close", () => socket.destroy())
  socket.pipe(stream)
  stream.pipe(socket)
}
