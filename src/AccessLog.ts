import * as fs from "node:fs"
import { Effect, type Scope } from "effect"
import { describeSystemError } from "./internal/SystemError.js"
import { ConfigError } from "./PicoConfig/ConfigError.js"
import type { Exchange } from "./Proxy/Forward.js"
import { clientIp } from "./Proxy/Headers.js"

/** The `--access-log.*` settings. */
export interface AccessLogSettings {
  readonly enabled: boolean
  /** A file to append to; "" writes to stderr, beside the other log lines. */
  readonly file: string
  /** Log paths with their query strings. */
  readonly query: boolean
}

export const defaultAccessLogSettings: AccessLogSettings = { enabled: true, file: "", query: false }

/** Writes one line per proxied exchange, when it ends; `status` is what the client got (499: nothing). */
export type AccessLog = (exchange: Exchange, status: number) => void

/** Lines waiting for the sink past this many characters are dropped (and counted): a stuck disk must not grow memory. */
const MAX_PENDING = 4 * 1024 * 1024

const round = (ms: number) => Math.round(ms * 1000) / 1000

/** The time of a line, formatted once per millisecond however many lines share it. */
let stampedAt = 0
let stamp = ""
const timestamp = (): string => {
  const now = Date.now()
  if (now !== stampedAt) {
    stampedAt = now
    stamp = new Date(now).toISOString()
  }
  return stamp
}

const json = JSON.stringify

/**
 * A target as the line gives it. One Pico could not rewrite to origin-form (`ftp://user:password@host/`, refused)
 * is kept as the client sent it, less any userinfo (with its scheme's `//` or, as in `user:pw@host`, without):
 * that is a credential.
 */
const loggedTarget = (url: string): string =>
  url.charCodeAt(0) === 47 ? url : url.replace(/^([^:/?#]*:\/\/)?[^/?#]*@/, "$1")

/**
 * The line: zap-style like every Pico log line (level, ts, subsystem, msg), then the exchange. Only the method,
 * the path (no query unless configured), ids, numbers and addresses are written: never a header value, so no
 * credential, cookie or token can reach the log. Built as one string, with JSON escaping for the strings that
 * came from a client: a line per request must cost little.
 */
const format = (nodeId: string, keepQuery: boolean, exchange: Exchange, status: number): string => {
  const { req } = exchange
  const url = loggedTarget(req.url ?? "")
  const query = keepQuery ? -1 : url.indexOf("?")
  const route = exchange.route ?? "none"
  let line =
    `{"level":"info","ts":"${timestamp()}","subsystem":"access",` +
    `"msg":"${exchange.upgrade === undefined ? "request" : "upgrade"}","node-id":${json(nodeId)},` +
    `"request-id":${json(exchange.requestId)},"endpoint-id":${json(exchange.endpointId ?? "")},` +
    `"method":${json(req.method ?? "")},"path":${json(query < 0 ? url : url.slice(0, query))},` +
    `"status":${status},"bytes-in":${exchange.bytesIn},"bytes-out":${exchange.bytesOut},` +
    `"duration-ms":${round(performance.now() - exchange.started)},` +
    `"upstream-ms":${exchange.upstreamMs < 0 ? -1 : round(exchange.upstreamMs)},"route":"${route}"`
  if (route === "local") line += `,"upstream":${json(exchange.via)}`
  else if (route === "forwarded") line += `,"to-node":${json(exchange.via)}`
  if (exchange.fromNode !== undefined) line += `,"from-node":${json(exchange.fromNode)}`
  line += `,"client-addr":${json(clientIp(req))}`
  if (exchange.failure !== undefined) line += `,"error":${json(exchange.failure)}`
  if (exchange.replayOf !== undefined) line += `,"replay-of":${json(exchange.replayOf)}`
  return `${line}}\n`
}

/** Where lines go: written in the background while the node runs, and synchronously at its end. */
interface Sink {
  readonly write: (text: string, done: () => void) => void
  readonly writeNow: (text: string) => void
}

const stderrSink: Sink = {
  write: (text, done) => {
    process.stderr.write(text)
    done()
  },
  writeNow: (text) => process.stderr.write(text),
}

/** Appends to a file opened now, so a bad path fails the start rather than the first request. */
const fileSink = (path: string): Effect.Effect<Sink, ConfigError, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.try({
        try: () => fs.openSync(path, "a"),
        catch: (cause) =>
          new ConfigError({
            reason: "unusable",
            message: `--access-log.file ${path}: ${describeSystemError(cause)}`,
            cause,
          }),
      }),
      (fd) => Effect.sync(() => fs.closeSync(fd)),
    ),
    (fd) => ({
      write: (text, done) => fs.write(fd, text, () => done()),
      writeNow: (text) => fs.writeSync(fd, text),
    }),
  )

/**
 * Collects the lines of one tick and writes them together: one write per tick instead of one per request. At most
 * one write is under way, so lines stay in order; `close` writes what is left at once.
 */
const batching = (sink: Sink) => {
  let pending = ""
  let writing = false
  let scheduled = false
  let dropped = 0
  const take = () => {
    if (dropped > 0) {
      pending += `${JSON.stringify({ level: "warn", ts: new Date().toISOString(), subsystem: "access", msg: "access log lines dropped: the log could not keep up", dropped })}\n`
      dropped = 0
    }
    const text = pending
    pending = ""
    return text
  }
  const flush = () => {
    scheduled = false
    if (writing || pending === "") return
    writing = true
    sink.write(take(), () => {
      writing = false
      if (pending !== "") flush()
    })
  }
  return {
    add: (line: string) => {
      if (pending.length > MAX_PENDING) {
        dropped++
        return
      }
      pending += line
      if (!scheduled) {
        scheduled = true
        setImmediate(flush)
      }
    },
    close: () => {
      if (pending !== "" || dropped > 0) sink.writeNow(take())
    },
  }
}

/** The access log of the node `nodeId`, or undefined when it is off. Lines pending at the end are written then. */
export const make = (
  settings: AccessLogSettings,
  nodeId: string,
): Effect.Effect<AccessLog | undefined, ConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    if (!settings.enabled) return undefined
    const sink = settings.file === "" ? stderrSink : yield* fileSink(settings.file)
    const lines = batching(sink)
    yield* Effect.addFinalizer(() => Effect.sync(lines.close))
    return (exchange, status) => lines.add(format(nodeId, settings.query, exchange, status))
  })
