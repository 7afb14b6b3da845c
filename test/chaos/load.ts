import { createHash, randomBytes } from "node:crypto"
import { request } from "../support/http.js"

/**
 * Steady load: `clients` sequential clients, each sending its next request as soon as the previous one ended,
 * through one URL (the balancer) to one endpoint. Every fourth request is a POST with a body, which the service
 * answers with the body's SHA-256, so a lost byte is a lost request too. Every request is recorded.
 */

export interface RequestRecord {
  readonly client: number
  readonly method: "GET" | "POST"
  /** Wall-clock milliseconds, comparable with the `ts` of the processes' log lines. */
  readonly start: number
  readonly end: number
  /** Undefined when the request was answered as expected; else the status and body, or the socket error. */
  readonly failure: string | undefined
}

export interface Load {
  readonly records: ReadonlyArray<RequestRecord>
  /** Stops the clients after their current request; resolves when all have ended. */
  readonly stop: () => Promise<void>
}

const body = randomBytes(64 * 1024)
const bodyHash = createHash("sha256").update(body).digest("hex")

/** A request that does not end in this long counts as lost (Pico's gateway timeout is 15 s). */
const REQUEST_TIMEOUT_MS = 20_000

export const startLoad = (url: string, endpointId: string, clients = 4): Load => {
  const records: Array<RequestRecord> = []
  let stopped = false
  const client = async (id: number) => {
    for (let sent = 0; !stopped; sent++) {
      const method = sent % 4 === 3 ? "POST" : "GET"
      const start = Date.now()
      const failure = await request(url, {
        method,
        headers: { "x-pico-endpoint": endpointId },
        timeoutMs: REQUEST_TIMEOUT_MS,
        ...(method === "POST" ? { body } : {}),
      }).then(
        (response) =>
          response.status === 200 && response.body === (method === "POST" ? bodyHash : "ok")
            ? undefined
            : `${response.status} ${response.body.replace(/\s+/g, " ").slice(0, 200)}`,
        (error: Error) => error.message,
      )
      records.push({ client: id, method, start, end: Date.now(), failure })
    }
  }
  const running = Promise.all(Array.from({ length: clients }, (_, id) => client(id)))
  return {
    records,
    stop: async () => {
      stopped = true
      await running
    },
  }
}

export interface Tally {
  readonly sent: number
  readonly lost: number
}

/** The requests that started in [from, to). */
export const tally = (
  records: ReadonlyArray<RequestRecord>,
  from = 0,
  to = Number.POSITIVE_INFINITY,
): Tally => {
  const within = records.filter((record) => record.start >= from && record.start < to)
  return { sent: within.length, lost: within.filter((record) => record.failure !== undefined).length }
}
