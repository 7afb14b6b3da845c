import * as http from "node:http"
import type { Duplex } from "node:stream"
import { Effect } from "effect"
import type { TunnelStream } from "../Tunnel.js"
import { ProxyError } from "./Errors.js"
import { clientResponseHeaders, requestHead, upstreamRequestHeaders } from "./Headers.js"

export interface ForwardOptions {
  /** Milliseconds to wait for the response headers. */
  readonly gatewayTimeout: number
  readonly proto: "http" | "https"
  /** Whether the response should close the client connection (the node is draining). */
  readonly closeConnection: () => boolean
}

/** A request without a body can be sent again when a kept-alive stream turns out to be closed already. */
const hasNoBody = (req: http.IncomingMessage): boolean =>
  req.headers["transfer-encoding"] === undefined &&
  (req.headers["content-length"] === undefined || req.headers["content-length"] === "0")

/** How many times a bodiless request is resent after finding a pooled stream already closed by the service. */
const STALE_STREAM_RETRIES = 2

/**
 * Sends one request over the tunnel (a pooled stream of `agent`) and streams the response back. Node's HTTP
 * client does the HTTP/1.1 framing over the stream, so bodies flow in both directions with backpressure and
 * nothing is buffered whole. Fails only before the response has started; after that a broken upstream can only
 * cut the client connection.
 */
export const forwardRequest = (
  agent: http.Agent,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  options: ForwardOptions,
): Effect.Effect<void, ProxyError> =>
  Effect.async<void, ProxyError>((resume) => {
    let settled = false
    const settle = (outcome: Effect.Effect<void, ProxyError>) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resume(outcome)
    }
    const headers = upstreamRequestHeaders(req, options.proto, false)
    const bodiless = hasNoBody(req)
    // A client that goes away resets the stream, so the upstream stops work on the request too.
    let clientGone = false

    const send = (retriesLeft: number): http.ClientRequest => {
      const upstreamReq = http.request({ method: req.method, path: req.url, headers, agent })
      upstreamReq.on("response", (upstreamRes) => {
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
        if (clientGone || settled) return
        if (res.headersSent) {
          res.destroy()
          settle(Effect.void)
        } else if (upstreamReq.reusedSocket && retriesLeft > 0 && bodiless) {
          current = send(retriesLeft - 1)
        } else settle(Effect.fail(new ProxyError({ reason: "upstream unreachable", detail: error.message })))
      })
      if (bodiless) upstreamReq.end()
      else req.pipe(upstreamReq)
      return upstreamReq
    }

    const timer = setTimeout(() => {
      current.destroy()
      settle(Effect.fail(new ProxyError({ reason: "endpoint timeout" })))
    }, options.gatewayTimeout)
    let current = send(STALE_STREAM_RETRIES)
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
  proto: "http" | "https",
): void => {
  stream.write(requestHead(req, upstreamRequestHeaders(req, proto, true)))
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
