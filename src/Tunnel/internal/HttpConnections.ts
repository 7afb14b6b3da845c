import { ResponseParser } from "./ResponseParser.js"
import type { TunnelStream } from "./Session.js"

/** An HTTP response head as read from a stream. */
export interface ResponseHead {
  readonly statusCode: number
  readonly statusMessage: string
  readonly rawHeaders: Array<string>
}

/** What one exchange on a connection hears back. Exactly one of `end` and `fail` is called, once. */
export interface ResponseListener {
  /** The final response head (informational 1xx heads are skipped). */
  readonly head: (head: ResponseHead) => void
  readonly body: (chunk: Buffer) => void
  readonly end: () => void
  /**
   * The stream failed or ended before the response did (`invalid` false), or the service sent something that is
   * not a valid response (`invalid` true: it did get the request); `detail` says what.
   */
  readonly fail: (detail: string, invalid: boolean) => void
}

/**
 * How a response's body is framed: its Content-Length (which the parser has checked), or undefined without one;
 * or, as a string, a Transfer-Encoding other than one chunked alone. Pico decodes only chunked, and a coding
 * under it (gzip) would reach the client unannounced once the hop-by-hop header is dropped, so such a response is
 * refused, as nginx refuses it.
 */
const bodyFraming = (rawHeaders: ReadonlyArray<string>): number | string | undefined => {
  let length: number | undefined
  let chunked = false
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string
    if (name.length === 14 && name.toLowerCase() === "content-length") length = Number(rawHeaders[i + 1])
    else if (name.length === 17 && name.toLowerCase() === "transfer-encoding") {
      const codings = rawHeaders[i + 1] as string
      if (chunked) return `chunked, ${codings}`
      if (codings.toLowerCase() !== "chunked") return codings
      chunked = true
    }
  }
  return length
}

/** Idle connections kept per session; more than this many idle at once are closed. */
const MAX_IDLE = 64

/**
 * HTTP/1.1 connections over one tunnel session's streams, kept alive: the proxy writes a request on a stream
 * and reads the response back with Node's parser (ResponseParser), with none of Node's HTTP client around it.
 * The far end pipes each stream to one TCP connection to its service, so a stream reused here is that service
 * connection reused too, as its keep-alive allows. Idle connections are reused newest first.
 */
export class HttpConnections {
  private readonly idle: Array<HttpConnection> = []
  /**
   * A stream of its own, never pooled: for an upgrade request, sent with Node's client, whose stream becomes a
   * byte pipe once the service switches protocols. Throws when the session takes no new streams.
   */
  readonly openStream: () => TunnelStream

  constructor(openStream: () => TunnelStream) {
    this.openStream = openStream
  }

  /** An idle connection, or a new one (throws when the session takes no new streams). */
  take(): HttpConnection {
    return this.idle.pop() ?? new HttpConnection(this.openStream(), this)
  }

  /** Closes every idle connection (the session is ending). */
  destroy(): void {
    for (const connection of this.idle.splice(0)) connection.destroy()
  }

  /** @internal A connection whose exchange completed cleanly offers itself for the next one. */
  release(connection: HttpConnection): void {
    if (this.idle.length >= MAX_IDLE) connection.destroy()
    else this.idle.push(connection)
  }

  /** @internal A connection that closed leaves the idle list. */
  forget(connection: HttpConnection): void {
    const at = this.idle.indexOf(connection)
    if (at >= 0) this.idle.splice(at, 1)
  }
}

/** One stream carrying one exchange at a time. */
export class HttpConnection {
  readonly stream: TunnelStream
  /** Whether an exchange went through it before: a service may have closed it meanwhile (a stale connection). */
  reused = false
  private readonly pool: HttpConnections
  private readonly parser: ResponseParser
  private listener: ResponseListener | undefined
  /** The exchange the connection serves, from `begin` until it is free again. */
  private owner: ResponseListener | undefined
  private headOnly = false
  private answered = false
  private keepAlive = false
  private requestDone = false
  private responseDone = false
  private closed = false
  /**
   * Bytes still to come of a Content-Length body, which is read here rather than by the parser: its pieces go on
   * as views of the stream's own chunks, where the parser would copy each one (at 1 MiB per response, those
   * copies kept the collector busy).
   */
  private bodyRemaining = 0

  constructor(stream: TunnelStream, pool: HttpConnections) {
    this.stream = stream
    this.pool = pool
    this.parser = new ResponseParser({
      head: (statusCode, statusMessage, rawHeaders, keepAlive) => {
        if (statusCode < 100) {
          this.fail(`invalid status code ${statusCode}`, true)
          return "none"
        }
        if (statusCode < 200 && statusCode !== 101) return "parse" // 100 Continue, 103 Early Hints: not the answer
        if (this.listener === undefined || this.answered || statusCode === 101) {
          this.fail(statusCode === 101 ? "switched protocols unasked" : "a response nobody asked for", true)
          return "none"
        }
        const framing = bodyFraming(rawHeaders)
        // A response that has no body (to HEAD, a 204 or 304) may name the coding its body would have had.
        const bodiless = this.headOnly || statusCode === 204 || statusCode === 304
        if (typeof framing === "string" && !bodiless) {
          this.fail(`unsupported transfer coding ${JSON.stringify(framing)}`, true)
          return "none"
        }
        this.answered = true
        this.keepAlive = keepAlive
        this.listener.head({ statusCode, statusMessage, rawHeaders })
        if (this.headOnly) return "none"
        // The parser has checked the length (one value, digits only, no Transfer-Encoding beside it).
        const length = bodiless || typeof framing === "string" ? 0 : framing
        if (length === undefined || length === 0) return "parse"
        this.bodyRemaining = length
        return "own"
      },
      body: (chunk) => this.listener?.body(chunk),
      complete: () => {
        // With a body still to read here, the parser only reports that it stopped at the head.
        if (this.answered && this.bodyRemaining === 0) this.responseEnded()
      },
    })
    stream.on("data", (chunk: Buffer) => this.received(chunk))
    stream.on("end", () => {
      // A body that runs until the connection ends completes here; anything else is cut short.
      const error = this.parser.finish()
      if (error === undefined) this.fail("connection closed", false)
      else this.fail(`invalid response: ${error.message}`, true)
    })
    stream.on("error", (error: Error) => this.fail(error.message, false))
    stream.on("close", () => this.fail("connection closed", false))
  }

  /**
   * Starts an exchange: the response goes to `listener`. `headOnly` for a HEAD request, whose response has no
   * body whatever its headers say. The caller writes the request on `stream` and calls `requestSent` after it.
   */
  begin(listener: ResponseListener, headOnly: boolean): void {
    this.listener = listener
    this.owner = listener
    this.headOnly = headOnly
    this.answered = false
    this.requestDone = false
    this.responseDone = false
  }

  /** The whole request has been written. */
  requestSent(): void {
    this.requestDone = true
    this.settle()
  }

  /** Pauses the response (the client is slow) or resumes it; the tunnel's flow control holds the rest. */
  pause(): void {
    this.stream.pause()
  }

  resume(): void {
    this.stream.resume()
  }

  /**
   * Abandons the connection for the exchange `owner` (the listener it began with): the far end sees a reset, so
   * its service connection is cut too. Nothing happens once the connection has moved on to another exchange.
   */
  abandon(owner: ResponseListener): void {
    if (this.owner === owner) this.destroy()
  }

  /** Closes the connection, whatever it is doing. */
  destroy(): void {
    this.fail("abandoned", false)
  }

  private received(chunk: Buffer): void {
    let offset = 0
    while (offset < chunk.length && !this.closed) {
      if (this.bodyRemaining === 0) {
        const parsed = this.parser.execute(offset === 0 ? chunk : chunk.subarray(offset))
        if (parsed instanceof Error) {
          this.fail(`invalid response: ${parsed.message}`, true)
          return
        }
        offset += parsed
        continue
      }
      const take = Math.min(this.bodyRemaining, chunk.length - offset)
      const piece = take === chunk.length ? chunk : chunk.subarray(offset, offset + take)
      offset += take
      this.bodyRemaining -= take
      this.listener?.body(piece)
      if (this.bodyRemaining === 0) {
        this.parser.reset()
        this.responseEnded()
      }
    }
  }

  private responseEnded(): void {
    this.responseDone = true
    const listener = this.listener
    this.listener = undefined
    listener?.end()
    this.settle()
  }

  /** Both halves of the exchange are done: the connection is free for the next one, if the response allows. */
  private settle(): void {
    if (!this.requestDone || !this.responseDone || this.closed) return
    if (!this.keepAlive) this.destroy()
    else {
      this.owner = undefined
      this.reused = true
      // An exchange may have paused it for a slow client just before the end: the next one starts flowing.
      this.stream.resume()
      this.pool.release(this)
    }
  }

  private fail(detail: string, invalid: boolean): void {
    if (this.closed) return
    this.closed = true
    this.pool.forget(this)
    this.parser.close()
    if (!this.stream.destroyed) this.stream.destroy()
    const listener = this.listener
    this.listener = undefined
    listener?.fail(detail, invalid)
  }
}
