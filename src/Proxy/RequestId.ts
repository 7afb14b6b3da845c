import { randomUUID } from "node:crypto"
import type * as http from "node:http"

/** The header that names one request across Pico's log, its capture, the next node and the service. */
export const requestIdHeader = "x-request-id"

/** Visible ASCII without spaces, at most 200 characters: what an id from a client may be and still be logged. */
const acceptable = /^[\x21-\x7e]{1,200}$/

/**
 * The request's id: the client's `x-request-id` when it sent a usable one (a tracing system's, or the node that
 * forwarded it), else a new UUID. An unusable one (empty, over 200 characters, spaces or control characters) is
 * replaced rather than logged, since it would let a client write anything into the log.
 */
export const requestIdOf = (req: http.IncomingMessage): string => {
  const given = req.headers[requestIdHeader]
  return typeof given === "string" && acceptable.test(given) ? given : randomUUID()
}
