import { type ServerResponse, STATUS_CODES } from "node:http"
import type { Duplex } from "node:stream"

/** Every error Pico answers itself is `{"error": "..."}` with the matching status. */
export const errorBody = (message: string): Buffer => Buffer.from(JSON.stringify({ error: message }))

export const writeJson = (
  res: ServerResponse,
  status: number,
  body: Buffer,
  headers?: Readonly<Record<string, string>>,
): void => {
  res.writeHead(status, { "content-type": "application/json", "content-length": body.length, ...headers })
  res.end(body)
}

/** How long a client answered on a raw socket has to close its end before the connection is cut. */
const RAW_ANSWER_LINGER_MS = 5000

/**
 * Answers on a raw socket, for upgrade requests refused before any handshake: the client sees a normal HTTP
 * response with a JSON body, then the connection closes. The socket may be half-open (HTTP servers allow it), so
 * a client that never closes its end is cut after a short linger, which lets it read the answer first.
 */
export const writeJsonToSocket = (
  socket: Duplex,
  status: number,
  body: Buffer,
  headers: Readonly<Record<string, string>> = {},
): void => {
  let extra = ""
  for (const [name, value] of Object.entries(headers)) extra += `${name}: ${value}\r\n`
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\ncontent-type: application/json\r\n` +
      `content-length: ${body.length}\r\n${extra}connection: close\r\n\r\n${body.toString()}`,
  )
  const cut = setTimeout(() => socket.destroy(), RAW_ANSWER_LINGER_MS).unref()
  socket.once("close", () => clearTimeout(cut))
}
