import { type IncomingMessage, STATUS_CODES } from "node:http"

const readBody = (response: IncomingMessage): Promise<string> =>
  new Promise((resolve) => {
    const chunks: Array<Buffer> = []
    let size = 0
    response.on("data", (chunk: Buffer) => {
      // A refusal body is a short JSON error; never hold, or wait for, more than a few KiB of it.
      if (size < 4096) chunks.push(chunk)
      size += chunk.length
      if (size >= 4096) resolve(Buffer.concat(chunks).toString("utf8").slice(0, 4096))
    })
    response.on("end", () => resolve(Buffer.concat(chunks).toString("utf8").slice(0, 4096)))
    response.on("error", () => resolve(""))
  })

/** A status as its line says it: "HTTP 502 Bad Gateway". */
export const statusReason = (status: number): string =>
  `HTTP ${status} ${STATUS_CODES[status] ?? ""}`.trimEnd()

/**
 * The server's own reason (Pico answers `{"error": "..."}`), else the status line: another server's HTML page
 * says nothing useful in a one-line log.
 */
const reasonOf = (status: number, body: string): string => {
  try {
    const parsed = JSON.parse(body) as { error?: unknown }
    if (typeof parsed.error === "string") return parsed.error
  } catch {
    // Not JSON: fall through to the status line.
  }
  return statusReason(status)
}

/** Reads the answer to an upgrade that was refused and says why, in a few words, for a one-line message. */
export const readRefusal = (response: IncomingMessage): Promise<string> =>
  readBody(response).then((body) => reasonOf(response.statusCode ?? 0, body))
