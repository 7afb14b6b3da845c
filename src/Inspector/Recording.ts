import type * as Capture from "../Domain/Capture.js"
import type { Exchange } from "../Proxy/Forward.js"
import type { ResponseHead as UpstreamHead } from "../Proxy/Headers.js"

/** Characters (names, values and the request target) a recording keeps of one head; the rest is left out. */
export const HEAD_CHARS = 16 * 1024
/** Headers a recording keeps of one head. */
export const HEAD_FIELDS = 200

/** How much of an exchange a capture keeps, and which header values it never keeps. */
export interface RecordingLimits {
  /** Bytes kept of each body. */
  readonly bodyBytes: number
  /** Lower-case header names whose values are replaced by "(redacted)". */
  readonly redact: ReadonlySet<string>
}

export const redactedValue = "(redacted)"

/**
 * The first bytes of a body, copied into one buffer of its own: never a view of Node's chunk (which could pin a
 * larger buffer), never one copy per chunk (a body trickling in byte by byte would cost an object per byte).
 */
export class BodyPrefix {
  size = 0
  /** Bytes kept: the first ones, up to the limit. */
  kept = 0
  private bytes: Buffer | undefined

  constructor(private readonly limit: number) {}

  add(chunk: Buffer): void {
    this.size += chunk.length
    const take = Math.min(chunk.length, this.limit - this.kept)
    if (take <= 0) return
    // allocUnsafeSlow: outside Node's shared pool, so what a recording holds is exactly what it counts.
    this.bytes ??= Buffer.allocUnsafeSlow(this.limit)
    chunk.copy(this.bytes, this.kept, 0, take)
    this.kept += take
  }

  /** Whether every byte it may keep has arrived. */
  get full(): boolean {
    return this.kept === this.limit
  }

  /** Gives back the unused part of the buffer, once the body is over. */
  seal(): void {
    if (this.bytes === undefined || this.kept === this.bytes.length) return
    const exact = Buffer.allocUnsafeSlow(this.kept)
    this.bytes.copy(exact, 0, 0, this.kept)
    this.bytes = exact
  }

  /** The bytes held, for the memory bound. */
  get retained(): number {
    return this.bytes?.length ?? 0
  }

  toJSON(): Capture.CapturedBody {
    return {
      size: this.size,
      base64: this.bytes === undefined ? "" : this.bytes.subarray(0, this.kept).toString("base64"),
      truncated: this.size > this.kept,
    }
  }
}

interface Head {
  readonly headers: ReadonlyArray<readonly [string, string]>
  readonly truncated: boolean
  /** Characters of names and values kept. */
  readonly chars: number
}

/** A head's headers as they arrived, redacted, within HEAD_CHARS (less `spent`) and HEAD_FIELDS. */
const headOf = (raw: ReadonlyArray<string>, redact: ReadonlySet<string>, spent: number): Head => {
  const headers: Array<readonly [string, string]> = []
  let chars = spent
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    const value = redact.has(name.toLowerCase()) ? redactedValue : (raw[i + 1] as string)
    chars += name.length + value.length
    if (chars > HEAD_CHARS || headers.length === HEAD_FIELDS) return { headers, truncated: true, chars }
    headers.push([name, value])
  }
  return { headers, truncated: false, chars }
}

interface ResponseHead {
  readonly status: number
  readonly message: string
  readonly head: Head
}

/**
 * One exchange being captured, fed by the proxy as it happens: the request head at once, the response head when
 * it arrives, the first bytes of each body as they pass, and the outcome when the exchange ends.
 */
export class Recording {
  readonly id: string
  readonly startedAt: number
  readonly method: string
  readonly path: string
  readonly httpVersion: string
  readonly request: Head
  readonly replayOf: string | undefined
  readonly requestBody: BodyPrefix
  readonly responseBody: BodyPrefix
  responseHead: ResponseHead | undefined
  done = false
  status: number | undefined
  durationMs: number | undefined
  upstreamMs: number | undefined
  route: Exchange["route"]
  via = ""
  failure: string | undefined

  constructor(
    readonly node: string,
    readonly endpoint: string,
    exchange: Exchange,
    private readonly limits: RecordingLimits,
    private readonly onDone: (recording: Recording) => void,
  ) {
    const { req } = exchange
    this.id = exchange.requestId
    this.startedAt = exchange.startedAt
    this.method = req.method ?? ""
    this.path = (req.url ?? "").slice(0, HEAD_CHARS)
    this.httpVersion = req.httpVersion
    this.request = headOf(req.rawHeaders, limits.redact, this.path.length)
    this.replayOf = exchange.replayOf
    this.requestBody = new BodyPrefix(limits.bodyBytes)
    this.responseBody = new BodyPrefix(limits.bodyBytes)
  }

  readonly response = (res: UpstreamHead): void => {
    this.responseHead = {
      status: res.statusCode ?? 0,
      message: res.statusMessage ?? "",
      head: headOf(res.rawHeaders, this.limits.redact, 0),
    }
  }

  readonly addRequestBody = (chunk: Buffer): void => this.requestBody.add(chunk)
  readonly addResponseBody = (chunk: Buffer): void => this.responseBody.add(chunk)

  /** The exchange is over (or became a pass-through): takes its outcome and tells the capture. */
  finish(exchange: Exchange, status: number): void {
    if (this.done) return
    this.done = true
    this.status = status
    this.durationMs = Math.round((performance.now() - exchange.started) * 1000) / 1000
    this.upstreamMs = exchange.upstreamMs < 0 ? undefined : Math.round(exchange.upstreamMs * 1000) / 1000
    this.route = exchange.route
    this.via = exchange.via
    this.failure = exchange.failure
    this.requestBody.seal()
    this.responseBody.seal()
    this.onDone(this)
  }

  /** Bytes of bodies and characters of heads held: what the capture's memory bound counts. */
  get retained(): number {
    return (
      this.requestBody.retained +
      this.responseBody.retained +
      this.request.chars +
      (this.responseHead?.head.chars ?? 0)
    )
  }

  summary(): Capture.ExchangeSummary {
    return {
      id: this.id,
      node: this.node,
      endpoint: this.endpoint,
      started: new Date(this.startedAt).toISOString(),
      method: this.method,
      path: this.path,
      status: this.status ?? null,
      duration_ms: this.durationMs ?? null,
      ...(this.replayOf === undefined ? {} : { replay_of: this.replayOf }),
    }
  }

  detail(): Capture.ExchangeDetail {
    const response = this.responseHead
    return {
      ...this.summary(),
      request: {
        method: this.method,
        path: this.path,
        http_version: this.httpVersion,
        headers: this.request.headers,
        headers_truncated: this.request.truncated,
        body: this.requestBody.toJSON(),
      },
      response:
        response === undefined
          ? null
          : {
              status: response.status,
              status_message: response.message,
              headers: response.head.headers,
              headers_truncated: response.head.truncated,
              body: this.responseBody.toJSON(),
            },
      upstream_ms: this.upstreamMs ?? null,
      upstream: this.route === undefined ? null : { route: this.route, session: this.via },
      ...(this.failure === undefined ? {} : { error: this.failure }),
    }
  }

  /** The captured request body whole, or undefined when only its first bytes were kept. */
  wholeRequestBody(): Buffer | undefined {
    const body = this.requestBody.toJSON()
    return body.truncated ? undefined : Buffer.from(body.base64, "base64")
  }
}
