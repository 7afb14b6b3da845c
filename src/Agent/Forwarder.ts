import type * as http from "node:http"
import * as net from "node:net"
import * as tls from "node:tls"
import type { ForwardMetrics } from "../Metrics/Agent.js"
import type { TunnelStream } from "../Tunnel.js"

/** How the agent checks an https:// service's certificate. */
export interface ServiceTls {
  /** PEM CA certificates the service's certificate must chain to; Node's default CAs when absent. */
  readonly ca?: Buffer | string
  /** Accept any certificate, for any name. Dangerous: whoever sits between agent and service can read it all. */
  readonly insecureSkipVerify?: boolean
}

/** A local service reached over TCP, or over TLS when `tls` is given (an https:// service). */
export interface TcpTarget {
  readonly host: string
  readonly port: number
  readonly tls?: ServiceTls
}

/** An HTTP server in this same process: streams are handed to it as connections, with no TCP hop at all. */
export interface InProcessTarget {
  readonly server: http.Server
}

export type ForwardTarget = TcpTarget | InProcessTarget

export type ForwardFailure = "upstream unreachable" | "upstream timeout"

const statusLine: Record<ForwardFailure, string> = {
  "upstream unreachable": "502 Bad Gateway",
  "upstream timeout": "504 Gateway Timeout",
}

/**
 * The agent never parses HTTP: once the local service accepts the connection, bytes are piped both ways, which
 * keeps streaming, WebSocket upgrades and any HTTP feature working untouched. Only when the service cannot be
 * reached does the agent speak HTTP itself, answering the proxy client with a JSON error.
 */
const answerWithError = (stream: TunnelStream, failure: ForwardFailure): void => {
  const body = JSON.stringify({ error: failure })
  // The request is never read: discard it so flow control does not stall the session.
  stream.resume()
  stream.end(
    `HTTP/1.1 ${statusLine[failure]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}` +
      `\r\nconnection: close\r\n\r\n${body}`,
  )
}

export type Forwarder = (stream: TunnelStream) => void

/** The proxy speaks HTTP/1.1 through the tunnel, so that is the only protocol to offer the service (ALPN). */
const ALPN = ["http/1.1"]

/**
 * A TLS connection to an https:// service. SNI carries the host name (never an IP address, RFC 6066), and the
 * certificate is checked against that name or address unless verification is off.
 */
const connectTls = (target: TcpTarget, options: ServiceTls): tls.TLSSocket =>
  tls.connect({
    host: target.host,
    port: target.port,
    ...(net.isIP(target.host) === 0 ? { servername: target.host } : {}),
    ...(options.ca === undefined ? {} : { ca: options.ca }),
    rejectUnauthorized: options.insecureSkipVerify !== true,
    ALPNProtocols: ALPN,
  })

/**
 * Makes the function that pipes each tunnel stream to a new TCP (or TLS) connection to the local service.
 *
 * Over TCP, responses are read with `onread` into one buffer reused for every read, and copied straight into
 * tunnel frames: at hundreds of MB/s a fresh buffer per socket read keeps V8 busy with full collections for
 * "external memory pressure". The buffer is safe to share because each read is framed (or copied aside) before
 * the next one. TLS sockets take no `onread`; their decrypted chunks go through the same path from 'data'.
 */
export const makeForwarder = (
  target: ForwardTarget,
  connectTimeout: number,
  onFailure: (failure: ForwardFailure, detail: string) => void,
  metrics: ForwardMetrics,
): Forwarder => {
  if ("server" in target) {
    return (stream) => {
      metrics.forwarded()
      target.server.emit("connection", stream)
    }
  }
  const readBuffer = Buffer.allocUnsafeSlow(64 * 1024)

  return (stream) => {
    const started = metrics.forwarded()
    let connected = false
    let responded = false
    const fail = (failure: ForwardFailure, detail: string) => {
      clearTimeout(timer)
      socket.destroy()
      if (stream.destroyed) return
      answerWithError(stream, failure)
      metrics.failed(failure)
      onFailure(failure, detail)
    }
    /**
     * Forwards one read. Returning false pauses the socket: before the tunnel could not take a whole read (so a
     * read rarely has to be copied aside), or until it has taken the part it could not.
     */
    const forwardRead = (buffer: Buffer, length: number): boolean => {
      if (!responded) {
        responded = true
        metrics.responded(started)
      }
      const taken = stream.writeNow(buffer, 0, length)
      if (taken < length) {
        stream.write(Buffer.from(buffer.subarray(taken, length)), () => socket.resume())
        return false
      }
      if (stream.writeNowCapacity >= readBuffer.length) return true
      stream.onceWritable(() => socket.resume())
      return false
    }
    const socket =
      target.tls === undefined
        ? net.connect({
            host: target.host,
            port: target.port,
            onread: { buffer: readBuffer, callback: (length) => forwardRead(readBuffer, length) },
          })
        : connectTls(target, target.tls).on("data", (chunk: Buffer) => {
            if (!forwardRead(chunk, chunk.length)) socket.pause()
          })
    const timer = setTimeout(
      () => fail("upstream timeout", `connect timed out after ${connectTimeout}ms`),
      connectTimeout,
    )
    // Connected means the TLS handshake is done too: a certificate the agent refuses is "upstream unreachable".
    socket.once(target.tls === undefined ? "connect" : "secureConnect", () => {
      connected = true
      clearTimeout(timer)
      socket.setNoDelay(true)
      stream.pipe(socket)
    })
    socket.on("end", () => stream.end())
    socket.on("error", (error) => {
      if (connected) stream.destroy()
      else fail("upstream unreachable", error.message)
    })
    // A reset stream (client gone, proxy timed out) must not leave the local connection open.
    stream.on("error", () => socket.destroy())
    stream.on("close", () => {
      if (connected) socket.end()
    })
  }
}
