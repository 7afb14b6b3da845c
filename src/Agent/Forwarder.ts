import * as http from "node:http"
import * as net from "node:net"
import * as tls from "node:tls"
import type { HostPort } from "../Domain/Address.js"
import { tcpUpgradeToken } from "../Domain/EndpointKind.js"
import { errorBody, writeJson, writeJsonToSocket } from "../internal/JsonResponse.js"
import { resetConnection } from "../internal/Reset.js"
import type { ForwardMetrics } from "../Metrics/Agent.js"
import type { TunnelStream } from "../Tunnel.js"

/** How the agent checks an https:// service's certificate. */
export interface ServiceTls {
  /** PEM CA certificates the service's certificate must chain to; Node's default CAs when absent. */
  readonly ca?: Buffer | string
  /** Accept any certificate, for any name. Dangerous: whoever sits between agent and service can read it all. */
  readonly insecureSkipVerify?: boolean
}

/** A local HTTP service reached over TCP, or over TLS when `tls` is given (an https:// service). */
export interface TcpTarget {
  readonly kind?: "http"
  readonly host: string
  readonly port: number
  readonly tls?: ServiceTls
}

/**
 * A local service that does not speak HTTP (a database, SSH, ...): the endpoint is a TCP endpoint, and each
 * connection a client opens to it (a TCP upgrade on the proxy port) becomes one connection to the service.
 */
export interface RawTcpTarget {
  readonly kind: "tcp"
  readonly host: string
  readonly port: number
}

/** An HTTP server in this same process: streams are handed to it as connections, with no TCP hop at all. */
export interface InProcessTarget {
  readonly kind?: "http"
  readonly server: http.Server
}

export type ForwardTarget = TcpTarget | RawTcpTarget | InProcessTarget

export type ForwardFailure = "upstream unreachable" | "upstream timeout"

const statuses: Record<ForwardFailure, number> = {
  "upstream unreachable": 502,
  "upstream timeout": 504,
}

/**
 * Answers the proxy client on the stream itself, with an HTTP status and a JSON error, then FIN: when the
 * service cannot be reached, or a TCP endpoint is asked for something other than a TCP connection.
 */
const answerWithError = (
  stream: TunnelStream,
  status: number,
  reason: string,
  headers?: Readonly<Record<string, string>>,
): void => {
  // The request is never read: discard it so flow control does not stall the session.
  stream.resume()
  writeJsonToSocket(stream, status, errorBody(reason), headers)
}

export type Forwarder = (stream: TunnelStream) => void

/** The proxy speaks HTTP/1.1 through the tunnel, so that is the only protocol to offer the service (ALPN). */
const ALPN = ["http/1.1"]

/**
 * A TLS connection to an https:// service. SNI carries the host name (never an IP address, RFC 6066), and the
 * certificate is checked against that name or address unless verification is off.
 */
const connectTls = ({ host, port }: HostPort, options: ServiceTls): tls.TLSSocket =>
  tls.connect({
    host,
    port,
    ...(net.isIP(host) === 0 ? { servername: host } : {}),
    ...(options.ca === undefined ? {} : { ca: options.ca }),
    rejectUnauthorized: options.insecureSkipVerify !== true,
    ALPNProtocols: ALPN,
  })

/** What a stream's connection to the service starts with, on a TCP endpoint: the handshake's two halves. */
interface Opening {
  /** For the client once the service has accepted the connection, before any byte of the service's. */
  readonly answer: string
  /** Bytes the client sent past its handshake, for the service before the rest of the stream. */
  readonly head: Buffer
}

/** The answer to a TCP upgrade: the connection is the service's from here on. */
const switchingProtocols = `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${tcpUpgradeToken}\r\n\r\n`

/**
 * Makes the function that pipes each tunnel stream to a new connection to the local service.
 *
 * On an HTTP endpoint every stream is piped to the service at once: the agent never parses HTTP, which keeps
 * streaming, WebSocket upgrades and any HTTP feature working untouched. On a TCP endpoint the stream starts with
 * the client's TCP upgrade request, which the agent reads (Node's HTTP parser) and answers itself: 101 once the
 * service has accepted the connection, then the stream is the service's bytes both ways, half-closes included.
 *
 * When the service cannot be reached, the agent answers with a 502 (504 when connecting timed out) and a JSON
 * error, on either kind. Over TCP, the service's bytes are read with `onread` into one buffer reused for every
 * read, and copied straight into tunnel frames: at hundreds of MB/s a fresh buffer per socket read keeps V8 busy
 * with full collections for "external memory pressure". The buffer is safe to share because each read is framed
 * (or copied aside) before the next one. A TLS service's decrypted chunks, read the usual way (`connectTls`), go
 * through the same path from 'data'.
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

  const connect = (stream: TunnelStream, opening: Opening | undefined) => {
    const started = metrics.forwarded()
    let connected = false
    let responded = false
    const fail = (failure: ForwardFailure, detail: string) => {
      clearTimeout(timer)
      socket.destroy()
      if (stream.destroyed) return
      answerWithError(stream, statuses[failure], failure)
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
    const tlsOptions = target.kind === "tcp" ? undefined : target.tls
    const socket =
      tlsOptions === undefined
        ? net.connect({
            host: target.host,
            port: target.port,
            // A TCP endpoint's connection carries half-closes through: the service ending its side does not end
            // ours. HTTP keeps TCP's default, so a service that closes is done with the stream both ways.
            allowHalfOpen: opening !== undefined,
            onread: { buffer: readBuffer, callback: (length) => forwardRead(readBuffer, length) },
          })
        : connectTls(target, tlsOptions).on("data", (chunk: Buffer) => {
            if (!forwardRead(chunk, chunk.length)) socket.pause()
          })
    const timer = setTimeout(
      () => fail("upstream timeout", `connect timed out after ${connectTimeout}ms`),
      connectTimeout,
    )
    // Connected means the TLS handshake is done too: a certificate the agent refuses is "upstream unreachable".
    socket.once(tlsOptions === undefined ? "connect" : "secureConnect", () => {
      connected = true
      clearTimeout(timer)
      socket.setNoDelay(true)
      if (opening !== undefined) {
        stream.write(opening.answer)
        if (opening.head.length > 0) socket.write(opening.head)
      }
      // A plain socket may take pieces of a reused read buffer in place (pipeInPlace). TLS sockets are left out:
      // whether their writableLength also covers plaintext still waiting to be encrypted has not been established.
      if (tlsOptions === undefined) stream.pipeInPlace(socket)
      else stream.pipe(socket)
    })
    socket.on("end", () => stream.end())
    socket.on("error", (error) => {
      if (connected) stream.destroy()
      else fail("upstream unreachable", error.message)
    })
    // A reset stream (client gone or reset, proxy timed out) must not leave the local connection open; the
    // service sees a reset, not a clean end.
    stream.on("error", () => resetConnection(socket))
    stream.on("close", () => {
      if (connected) socket.end()
    })
  }

  if (target.kind !== "tcp") return (stream) => connect(stream, undefined)

  // --- A TCP endpoint: read the client's handshake, connect, answer ---

  // Pico's proxy sends a TCP endpoint nothing else; another client (or a node that predates kinds) is told why.
  const notTcp = { status: 426, reason: "endpoint is tcp", headers: { upgrade: tcpUpgradeToken } } as const
  const handshakes = http.createServer()
  handshakes.on("upgrade", (req: http.IncomingMessage, stream: TunnelStream, head: Buffer) => {
    if (req.headers.upgrade?.toLowerCase() === tcpUpgradeToken)
      connect(stream, { answer: switchingProtocols, head })
    else answerWithError(stream, notTcp.status, notTcp.reason, notTcp.headers)
  })
  handshakes.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    req.resume()
    res.shouldKeepAlive = false
    writeJson(res, notTcp.status, errorBody(notTcp.reason), notTcp.headers)
  })
  return (stream) => handshakes.emit("connection", stream)
}
