import { once } from "node:events"
import * as http from "node:http"
import type { Duplex } from "node:stream"
import WebSocket from "ws"
import type { Session } from "../../src/Tunnel/internal/Session.js"
import { openWebSocket } from "../../src/Tunnel/internal/WebSocketClient.js"
import { acceptWebSocket } from "../../src/Tunnel/internal/WebSocketHandshake.js"
import { runWebSocketSession } from "../../src/Tunnel/internal/WebSocketSession.js"
import { attachWsClient } from "./wsClientSession.js"

export interface Accepted {
  readonly session: Session
  readonly socket: Duplex
}

/**
 * Pico's server side of tunnels on 127.0.0.1: the upgrade handshake and runWebSocketSession, as the upstream
 * listener runs them. connect() adds a client, Pico's agent's own or a `ws` one, and yields the two ends of one
 * session with the client's socket.
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
    const connection = { session: runWebSocketSession(socket, head, { role: "server" }), socket }
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

  /** Pico's agent's client, whose frames carry the all-zero masking key. */
  const connectAsAgent = async () => {
    const server = nextAccepted()
    const opened = await new Promise<{ readonly socket: Duplex; readonly head: Buffer }>((resolve, reject) =>
      openWebSocket({ url, headers: {}, timeoutMs: 5_000 }, (outcome) =>
        outcome._tag === "Open" ? resolve(outcome) : reject(new Error(JSON.stringify(outcome))),
      ),
    )
    const client = runWebSocketSession(opened.socket, opened.head, { role: "client" })
    const { session, socket } = await server
    return { client, server: session, clientSocket: opened.socket, serverSocket: socket }
  }

  /** A `ws` client with random masks, as other clients (and RFC 6455) send them. */
  const connectWithWs = async () => {
    const ws = new WebSocket(url)
    const server = nextAccepted()
    await once(ws, "open")
    const client = attachWsClient(ws, { role: "client" })
    const { session, socket } = await server
    const clientSocket = (ws as unknown as { readonly _socket: Duplex })._socket
    return { client, server: session, clientSocket, serverSocket: socket, ws }
  }

  /** `masks`: "zero" with Pico's agent's client, or "random" with a `ws` client. */
  const connect = (masks: "zero" | "random" = "zero") =>
    masks === "zero" ? connectAsAgent() : connectWithWs()

  const stop = async () => {
    for (const socket of sockets) socket.destroy()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
  return { port, connect, connectAsAgent, connectWithWs, nextAccepted, stop }
}
