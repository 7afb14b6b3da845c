import { once } from "node:events"
import * as http from "node:http"
import type { Duplex } from "node:stream"
import WebSocket from "ws"
import { attachWebSocket } from "../../src/Tunnel/internal/ClientWebSocket.js"
import { serveWebSocket } from "../../src/Tunnel/internal/ServerWebSocket.js"
import type { Session } from "../../src/Tunnel/internal/Session.js"
import { acceptWebSocket } from "../../src/Tunnel/internal/WebSocketHandshake.js"

export interface Accepted {
  readonly session: Session
  readonly socket: Duplex
}

/**
 * Pico's server side of tunnels on 127.0.0.1: the upgrade handshake and serveWebSocket, as the upstream listener
 * runs them. connect() adds a `ws` client as Pico's agent uses it and yields the two ends of one session.
 */
export const startWebSocketServer = async () => {
  const server = http.createServer()
  const accepted: Array<Accepted> = []
  const waiting: Array<(accepted: Accepted) => void> = []
  const sockets = new Set<Duplex>()
  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
    if (acceptWebSocket(req, socket) !== undefined) return
    const connection = { session: serveWebSocket(socket, head, { role: "server" }), socket }
    const waiter = waiting.shift()
    if (waiter === undefined) accepted.push(connection)
    else waiter(connection)
  })
  server.listen(0, "127.0.0.1")
  await once(server, "listening")
  const address = server.address()
  if (address === null || typeof address === "string") throw new Error("expected a TCP address")
  const { port } = address
  const url = `ws://127.0.0.1:${port}`

  /** The server end of the next session to be accepted. */
  const nextAccepted = (): Promise<Accepted> => {
    const connection = accepted.shift()
    return connection === undefined
      ? new Promise((resolve) => waiting.push(resolve))
      : Promise.resolve(connection)
  }

  /** `masks`: "zero" as Pico's agent sends, or "random" as other clients (and RFC 6455) do. */
  const connect = async (masks: "zero" | "random" = "zero") => {
    const ws = new WebSocket(
      url,
      masks === "zero" ? { generateMask: (mask: Buffer) => void mask.fill(0) } : undefined,
    )
    const server = nextAccepted()
    await once(ws, "open")
    const client = attachWebSocket(ws, { role: "client" })
    const { session, socket } = await server
    return { client, server: session, ws, serverSocket: socket }
  }

  const stop = async () => {
    for (const socket of sockets) socket.destroy()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
  return { port, connect, nextAccepted, stop }
}
