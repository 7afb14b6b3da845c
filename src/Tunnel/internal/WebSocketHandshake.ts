import { createHash } from "node:crypto"
import type { IncomingMessage } from "node:http"
import type { Duplex } from "node:stream"
import { errorBody, writeJsonToSocket } from "../../internal/JsonResponse.js"

/** RFC 6455 §1.3: appended to the client's key before hashing. */
const ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/** Base64 of 16 bytes: 22 characters and two padding characters. */
const KEY_PATTERN = /^[A-Za-z0-9+/]{22}==$/

/** Sec-WebSocket-Accept for a client's key: base64(SHA-1(key + GUID)). */
export const acceptValue = (key: string): string =>
  createHash("sha1")
    .update(key + ACCEPT_GUID)
    .digest("base64")

const hasToken = (value: string | undefined, token: string): boolean =>
  value?.split(",").some((part) => part.trim().toLowerCase() === token) === true

/** The client's key of a WebSocket opening handshake we accept (RFC 6455 §4.2.1), or why it is not one. */
const checkHandshake = (req: IncomingMessage): { readonly key: string } | { readonly error: string } => {
  const { headers } = req
  if (req.method !== "GET") return { error: "a websocket handshake must be a GET request" }
  if (req.httpVersionMajor * 10 + req.httpVersionMinor < 11) {
    return { error: "a websocket handshake needs HTTP/1.1" }
  }
  if (headers.upgrade?.toLowerCase() !== "websocket") return { error: "expected Upgrade: websocket" }
  if (!hasToken(headers.connection, "upgrade")) return { error: "expected Connection: Upgrade" }
  if (headers["sec-websocket-version"] !== "13") {
    return { error: "unsupported Sec-WebSocket-Version (expected 13)" }
  }
  const key = headers["sec-websocket-key"]
  if (key === undefined || !KEY_PATTERN.test(key)) return { error: "missing or invalid Sec-WebSocket-Key" }
  return { key }
}

/**
 * Answers an upgrade request: `101 Switching Protocols` for a valid handshake (no extensions, no subprotocol),
 * else a 400 JSON error that closes the connection. Returns the reason for a refusal.
 */
export const acceptWebSocket = (req: IncomingMessage, socket: Duplex): string | undefined => {
  const handshake = checkHandshake(req)
  if ("error" in handshake) {
    writeJsonToSocket(socket, 400, errorBody(handshake.error))
    return handshake.error
  }
  socket.write(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${acceptValue(handshake.key)}\r\n\r\n`,
  )
  return undefined
}
