import type * as http from "node:http"
import { Effect } from "effect"
import type { HttpConnection, HttpConnections, ResponseListener } from "../Tunnel/internal/HttpConnections.js"
import { ProxyError } from "./Errors.js"
import {
  type AttemptOutcome,
  cutResponse,
  done,
  type Exchange,
  hasNoBody,
  isIdempotent,
  observeRequestBody,
  observeResponseBody,
  relayHead,
  watchBodyIdle,
} from "./Forward.js"

/**
 * The request head for the tunnel. Every name and value came through Node's strict request parser (the client's
 * own headers) or was built from checked parts (addresses, a validated request id), so none can hold a line
 * break. A chunked body is sent chunked again; any other body keeps its Content-Length, which came with it.
 */
const requestHead = (req: http.IncomingMessage, headers: ReadonlyArray<string>, chunked: boolean): string => {
  let head = `${req.method} ${req.url} HTTP/1.1\r\n`
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`
  return chunked ? `${head}Transfer-Encoding: chunked\r\n\r\n` : `${head}\r\n`
}

const CRLF = Buffer.from("\r\n")
const lastChunk = Buffer.from("0\r\n\r\n")

/**
 * Writes the client's body on the connection with backpressure: read, write, pause while the tunnel is full.
 * `chunked` frames each piece as a chunk (Node hands over the body already de-chunked).
 */
const sendBody = (req: http.IncomingMessage, connection: HttpConnection, chunked: boolean): void => {
  const { stream } = connection
  const resume = () => req.resume()
  req.on("data", (chunk: Buffer) => {
    if (stream.destroyed) return // answered early, or failed: the rest is not wanted
    if (chunked) {
      stream.write(`${chunk.length.toString(16)}\r\n`)
      stream.write(chunk)
      if (stream.write(CRLF)) return
    } else if (stream.write(chunk)) return
    req.pause()
    stream.once("drain", resume)
  })
  req.once("end", () => {
    if (chunked) stream.write(lastChunk)
    connection.requestSent()
  })
}

/**
 * Sends the request through one of the session's HTTP connections and streams the response back: the path of
 * every request an upstream of this node serves, with no Node HTTP client in between (HttpConnections). It keeps
 * `attempt`'s rules: the gateway timeout counts from the end of the upload, a body is bounded by the pause between
 * reads, a request without a body that meets a stale kept-alive connection is retried, a failure after the
 * response started cuts the client connection, and a client that goes away resets the stream.
 */
export const sendThroughTunnel = (
  exchange: Exchange,
  connections: HttpConnections,
  headers: ReadonlyArray<string>,
  settled: (result: AttemptOutcome | ProxyError) => void,
): (() => void) => {
  const { req, res } = exchange
  let connection: HttpConnection
  try {
    connection = connections.take()
  } catch (error) {
    settled({ _tag: "Retry", reason: "connection failed", detail: String(error) })
    return () => {}
  }
  let over = false
  let responding = false
  let timer: NodeJS.Timeout | undefined
  const settle = (result: AttemptOutcome | ProxyError) => {
    if (over) return
    over = true
    clearTimeout(timer)
    settled(result)
  }
  // Once the exchange is over, the connection may already carry the next one: only its owner may abandon it.
  const abandon = () => connection.abandon(listener)
  // Settled first: destroying the connection reports its own failure, which must not replace this one.
  const fail = (reason: ProxyError["reason"], detail?: string) => {
    settle(new ProxyError(detail === undefined ? { reason } : { reason, detail }))
    abandon()
  }
  const bodiless = hasNoBody(req)
  const reused = connection.reused
  const sentAt = performance.now()
  let waitingForClient = false
  const resumeResponse = () => {
    waitingForClient = false
    connection.resume()
  }

  const listener: ResponseListener = {
    head: (head) => {
      clearTimeout(timer)
      responding = true
      relayHead(exchange, head, sentAt)
    },
    body: (chunk) => {
      if (exchange.observed || exchange.capture !== undefined) observeResponseBody(exchange, chunk)
      if (res.write(chunk) || waitingForClient) return
      waitingForClient = true
      connection.pause()
      res.once("drain", resumeResponse)
    },
    end: () => {
      // The client's response ends here, so it will not drain: a connection paused for it resumes before it
      // serves another exchange.
      if (waitingForClient) {
        res.off("drain", resumeResponse)
        resumeResponse()
      }
      res.end()
      // Answered before the upload ended: the rest is not wanted, and the connection cannot carry another.
      if (!req.complete) abandon()
    },
    fail: (detail, invalid) => {
      if (over) return
      if (responding) {
        cutResponse(exchange)
        settle(done)
      } else if (invalid) {
        // The service got the request and answered nonsense: sending it again elsewhere could run it twice.
        fail("upstream unreachable", detail)
      } else if (!exchange.bodySpent && isIdempotent(req)) {
        // The head went out at once, so the service may have the request: only an idempotent one goes again.
        clearTimeout(timer)
        settle({
          _tag: "Retry",
          reason: reused && bodiless ? "stale connection" : "connection failed",
          detail,
        })
      } else fail("upstream unreachable", detail)
    },
  }
  connection.begin(listener, req.method === "HEAD")

  const chunked = req.headers["transfer-encoding"] !== undefined
  // Latin-1, as Node's client writes a head: header values arrive from its parser one character per byte.
  connection.stream.write(requestHead(req, headers, chunked), "latin1")
  const waitForResponse = () => {
    if (over || responding) return
    timer = setTimeout(
      () =>
        fail("endpoint timeout", `no response headers from the upstream within ${exchange.gatewayTimeout}ms`),
      exchange.gatewayTimeout,
    )
  }
  if (bodiless) {
    connection.requestSent()
    waitForResponse()
  } else {
    // From here the upload is bounded by the pause between reads, then by the gateway timeout.
    exchange.bodySpent = true
    watchBodyIdle(
      exchange,
      connection.stream,
      () => fail("request body timeout"),
      () => fail("endpoint timeout"),
    )
    observeRequestBody(exchange)
    sendBody(req, connection, chunked)
    req.once("end", waitForResponse)
  }

  // A client that goes away resets the stream, so the upstream stops work on the request too.
  res.on("close", () => {
    if (!res.writableFinished) abandon()
    settle(done)
  })
  res.on("finish", () => settle(done))
  req.on("error", abandon)
  return () => {
    clearTimeout(timer)
    abandon()
  }
}

/** sendThroughTunnel as an Effect, for the proxy's retries: interrupting it abandons the attempt. */
export const sendThroughTunnelEffect = (
  exchange: Exchange,
  connections: HttpConnections,
  headers: ReadonlyArray<string>,
): Effect.Effect<AttemptOutcome, ProxyError> =>
  Effect.async<AttemptOutcome, ProxyError>((resume) => {
    const abandon = sendThroughTunnel(exchange, connections, headers, (result) =>
      resume(result._tag === "ProxyError" ? Effect.fail(result) : Effect.succeed(result)),
    )
    return Effect.sync(abandon)
  })
