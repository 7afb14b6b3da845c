import { createHash } from "node:crypto"
import * as net from "node:net"
import { Effect } from "effect"
import { EndpointId } from "../../src/Domain/EndpointId.js"
import * as Forward from "../../src/Forward.js"
import { startAgent, type TestAgent } from "./node.js"

export interface TcpService {
  readonly port: number
  /** Every connection the service has accepted so far. */
  readonly accepted: ReadonlyArray<net.Socket>
  readonly close: () => Promise<void>
}

/** A TCP service on 127.0.0.1 with an ephemeral port; half-closes are left to `onConnection` to handle. */
export const startTcpService = async (onConnection: (socket: net.Socket) => void): Promise<TcpService> => {
  const accepted: Array<net.Socket> = []
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    accepted.push(socket)
    socket.on("error", () => socket.destroy())
    onConnection(socket)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted,
    close: () =>
      new Promise((resolve) => {
        for (const socket of accepted) socket.destroy()
        server.close(() => resolve())
      }),
  }
}

/** Echoes every byte back, and ends its side when the client ends its own. */
export const startEchoService = () => startTcpService((socket) => socket.pipe(socket))

/** Runs an in-process agent whose endpoints are TCP endpoints: endpoint id → local port. */
export const startTcpAgent = (serverUrl: string, endpoints: Record<string, number>): TestAgent =>
  startAgent(
    serverUrl,
    {},
    {
      endpoints: Object.entries(endpoints).map(([id, port]) => ({
        id: EndpointId(id),
        host: "127.0.0.1",
        port,
        kind: "tcp" as const,
      })),
    },
  )

/** Opens a connection to a TCP endpoint through a proxy port, as a library user would. */
export const connectTcp = (
  proxyUrl: string,
  endpointId: string,
  options: Partial<Forward.ConnectOptions> = {},
): Promise<net.Socket> =>
  Effect.runPromise(Forward.connect({ serverUrl: proxyUrl, endpointId: EndpointId(endpointId), ...options }))

/** The error a refused connection fails with. */
export const connectFailure = (
  proxyUrl: string,
  endpointId: string,
  options: Partial<Forward.ConnectOptions> = {},
): Promise<Forward.ForwardError> =>
  Effect.runPromise(
    Effect.flip(Forward.connect({ serverUrl: proxyUrl, endpointId: EndpointId(endpointId), ...options })),
  )

/** A client connection to a local port (a `pico forward tcp` listener), half-closes allowed. */
export const connectLocal = (port: number): Promise<net.Socket> =>
  new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true })
    socket.once("connect", () => resolve(socket))
    socket.once("error", reject)
  })

/** Everything the socket sends until it ends (FIN); rejects if it is reset instead. */
export const readToEnd = (socket: net.Socket): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    socket.on("data", (chunk: Buffer) => chunks.push(chunk))
    socket.once("end", () => resolve(Buffer.concat(chunks)))
    socket.once("error", reject)
    socket.resume()
  })

/** Resolves once the far end has ended the connection, with how: "end" (a FIN) or the error's code (a reset). */
export const closing = (socket: net.Socket): Promise<string> =>
  new Promise((resolve) => {
    socket.once("end", () => resolve("end"))
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
    socket.resume()
  })

export const sha256 = (bytes: Buffer): string => createHash("sha256").update(bytes).digest("hex")

/**
 * Sends raw bytes (a handshake) to a port, and resolves once the answer's head is complete with that head and the
 * socket, paused, positioned right after it.
 */
export const rawHandshake = (
  port: number,
  head: string,
): Promise<{ readonly answer: string; readonly socket: net.Socket }> =>
  new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.write(head))
    let received = Buffer.alloc(0)
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      const end = received.indexOf("\r\n\r\n")
      if (end < 0) return
      socket.off("data", onData)
      socket.pause()
      const rest = received.subarray(end + 4)
      if (rest.length > 0) socket.unshift(rest)
      resolve({ answer: received.subarray(0, end + 4).toString("latin1"), socket })
    }
    socket.on("data", onData)
    socket.once("error", reject)
  })

/** The TCP handshake of docs/protocol.md, naming the endpoint in the path. */
export const tcpHandshake = (endpointId: string): string =>
  `GET /pico/v1/tcp/${endpointId} HTTP/1.1\r\nHost: pico.example.com\r\nConnection: Upgrade\r\nUpgrade: pico-tcp\r\n\r\n`
