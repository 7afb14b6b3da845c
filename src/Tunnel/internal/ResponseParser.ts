import { createRequire } from "node:module"

/**
 * Node's own HTTP/1.1 parser (llhttp), as its HTTP client drives it, without the client around it. The proxy
 * reads responses from tunnel streams with it: it accepts and rejects exactly what Node's client does (duplicate
 * Content-Length, Content-Length beside Transfer-Encoding, bad chunk sizes, invalid header bytes, oversized
 * heads), so a response can never be framed differently here than in any Node HTTP client, and a pooled stream
 * cannot be desynchronised. `_http_common` is not a documented module; test/ResponseParser.test.ts pins the
 * behaviour this relies on, on every Node version the suite runs.
 */
interface NodeHttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void
  execute(data: Buffer): number | Error
  finish(): number | Error | undefined
  close(): void
  [callback: number]: unknown
}

interface NodeHttpParserClass {
  new (): NodeHttpParser
  readonly RESPONSE: number
  readonly kOnHeaders: number
  readonly kOnHeadersComplete: number
  readonly kOnBody: number
  readonly kOnMessageComplete: number
  readonly kOnExecute: number
  readonly kLenientNone: number
}

const { HTTPParser } = createRequire(import.meta.url)("_http_common") as { HTTPParser: NodeHttpParserClass }

/** Node's default for --max-http-header-size: a response head larger than this is refused. */
const MAX_HEADER_SIZE = 16 * 1024

/**
 * What follows a response head: a body the parser reads ("parse"), none whatever the headers say ("none": the
 * answer to a HEAD request), or a body the caller reads itself ("own": parsing stops at the end of the head, and
 * the caller calls `reset` before the next message).
 */
export type BodyReading = "parse" | "none" | "own"

const headResults: Record<BodyReading, number> = { parse: 0, none: 1, own: 2 }

/** What the parser reports, message by message, in order. */
export interface ResponseEvents {
  /** A response head; informational ones (1xx) included. Says how its body is read. */
  readonly head: (
    statusCode: number,
    statusMessage: string,
    rawHeaders: Array<string>,
    keepAlive: boolean,
  ) => BodyReading
  readonly body: (chunk: Buffer) => void
  readonly complete: () => void
}

/** Parses a stream of HTTP/1.1 responses. Errors are returned, never thrown; after one, nothing else parses. */
export class ResponseParser {
  private readonly parser = new HTTPParser()
  /** Header lines delivered before the head was complete (Node flushes them in groups of 32). */
  private earlyHeaders: Array<string> = []

  constructor(events: ResponseEvents) {
    const parser = this.parser
    parser[HTTPParser.kOnHeaders] = (headers: Array<string>) => {
      for (const item of headers) this.earlyHeaders.push(item)
    }
    parser[HTTPParser.kOnHeadersComplete] = (
      _versionMajor: number,
      _versionMinor: number,
      headers: Array<string> | undefined,
      _method: unknown,
      _url: unknown,
      statusCode: number,
      statusMessage: string,
      _upgrade: boolean,
      keepAlive: boolean,
    ) => {
      let rawHeaders = headers ?? []
      if (this.earlyHeaders.length > 0) {
        rawHeaders = this.earlyHeaders.concat(rawHeaders)
        this.earlyHeaders = []
      }
      // 2 is Node's "upgrade": llhttp stops right after the head and `execute` says where.
      return headResults[events.head(statusCode, statusMessage, rawHeaders, keepAlive)]
    }
    parser[HTTPParser.kOnBody] = events.body
    parser[HTTPParser.kOnMessageComplete] = events.complete
    parser[HTTPParser.kOnExecute] = () => {}
    this.reset()
  }

  /** Ready for the next message, after a head whose body the caller read itself. */
  reset(): void {
    if (this.closed) return
    this.earlyHeaders = []
    this.parser.initialize(HTTPParser.RESPONSE, {}, MAX_HEADER_SIZE, HTTPParser.kLenientNone)
  }

  /**
   * Parses the next bytes and says how many it took: all of them, unless a head's body is the caller's to read
   * (then up to the end of that head). An Error says why they are not a valid response stream.
   */
  execute(chunk: Buffer): Error | number {
    const result = this.run(() => this.parser.execute(chunk))
    return result instanceof Error ? result : (result ?? 0)
  }

  /** The stream ended: completes a body that runs until the end, or says the end came too early. */
  finish(): Error | undefined {
    const result = this.run(() => this.parser.finish())
    return result instanceof Error ? result : undefined
  }

  /** Releases the native parser; asked from one of its own callbacks, once it has returned. */
  close(): void {
    if (this.closed) return
    this.closed = true
    if (!this.running) this.parser.close()
  }

  // Freeing the native parser while it runs would pull memory from under it: a crash, not an exception.
  private running = false
  private closed = false

  private run(parse: () => number | Error | undefined): number | Error | undefined {
    if (this.closed || this.running) return undefined
    this.running = true
    const result = parse()
    this.running = false
    if (this.closed) this.parser.close()
    return result
  }
}
