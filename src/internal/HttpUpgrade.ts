import * as http from "node:http"
import * as https from "node:https"
import type { Duplex } from "node:stream"
import { readRefusal, statusReason } from "./Refusal.js"

/** How an HTTP upgrade request ended. */
export type UpgradeOutcome =
  /** The server switched protocols: the socket is the caller's; `head` is what was read past the answer. */
  | {
      readonly _tag: "Switched"
      readonly response: http.IncomingMessage
      readonly socket: Duplex
      readonly head: Buffer
    }
  /** The server answered with another status: its JSON `error` (or the status line), and its headers. */
  | {
      readonly _tag: "Refused"
      readonly status: number
      readonly headers: Record<string, string>
      readonly message: string
    }
  /** No valid answer: a network or TLS failure, or a 101 that `invalidAnswer` rejects. */
  | { readonly _tag: "Unreachable"; readonly message: string; readonly cause?: unknown }
  /** No answer within the time allowed. */
  | { readonly _tag: "TimedOut" }

export interface UpgradeOptions {
  /** https (TLS) or http. */
  readonly secure: boolean
  /** Host, port, path, headers (Connection and Upgrade included), TLS and connection options. */
  readonly request: https.RequestOptions
  /** How long connecting and the answer may take. */
  readonly timeoutMs: number
  /**
   * What is wrong with a 101 answer, if anything (such as another protocol than the one asked for): its socket is
   * then closed and the outcome is Unreachable.
   */
  readonly invalidAnswer: (response: http.IncomingMessage) => string | undefined
  /**
   * Called when the attempt is given up (timeout or abandon) before an answer: for a `createConnection` that may
   * still be connecting, which destroying the request does not reach.
   */
  readonly givenUp?: (() => void) | undefined
}

/**
 * How long a refusal's body may take once its status line is in: the status already decides, and the body only
 * words it (a JSON error, sent with the head by any server). A client holding on to it for the whole handshake
 * timeout made `pico agent` take 30 s to exit on a refused token.
 */
const REFUSAL_BODY_MS = 1_000

const flatHeaders = (response: http.IncomingMessage): Record<string, string> => {
  const flat: Record<string, string> = {}
  for (const [name, value] of Object.entries(response.headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(", ") : value
  }
  return flat
}

/**
 * Sends one HTTP upgrade request and calls `done` once with how it ended. Returns a function that abandons the
 * attempt: it stops the request, or, when `done` was already given a switched socket that its caller will now not
 * take, closes that socket.
 */
export const requestUpgrade = (
  options: UpgradeOptions,
  done: (outcome: UpgradeOutcome) => void,
): (() => void) => {
  const request = (options.secure ? https : http).request(options.request)
  let settled: UpgradeOutcome | undefined
  const settle = (outcome: UpgradeOutcome): void => {
    if (settled !== undefined) return
    settled = outcome
    clearTimeout(timer)
    clearTimeout(bodyTimer)
    done(outcome)
  }
  /** Set once a refusal's status is known, while its body is still being read. */
  let refused: Extract<UpgradeOutcome, { _tag: "Refused" }> | undefined
  let bodyTimer: NodeJS.Timeout | undefined
  const timer = setTimeout(() => {
    request.destroy()
    options.givenUp?.()
    // A refusal whose body is slow is still a refusal: its status line says why.
    settle(refused ?? { _tag: "TimedOut" })
  }, options.timeoutMs)

  request.once("upgrade", (response: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const invalid = options.invalidAnswer(response)
    if (invalid === undefined && settled === undefined)
      return settle({ _tag: "Switched", response, socket, head })
    socket.destroy()
    if (invalid !== undefined) settle({ _tag: "Unreachable", message: invalid })
  })
  request.once("response", (response: http.IncomingMessage) => {
    const status = response.statusCode ?? 0
    // Once the body is read a kept-alive connection is detached from the request: it must be closed here.
    const connection = response.socket
    if (status === 101) {
      // Node upgrades only when the answer has both Upgrade and Connection: Upgrade.
      connection.destroy()
      const message =
        options.invalidAnswer(response) ?? "the answer switches protocols without Connection: Upgrade"
      return settle({ _tag: "Unreachable", message })
    }
    const headers = flatHeaders(response)
    const byStatus: Extract<UpgradeOutcome, { _tag: "Refused" }> = {
      _tag: "Refused",
      status,
      headers,
      message: statusReason(status),
    }
    refused = byStatus
    bodyTimer = setTimeout(
      () => {
        connection.destroy()
        settle(byStatus)
      },
      Math.min(REFUSAL_BODY_MS, options.timeoutMs),
    )
    void readRefusal(response).then((message) => {
      connection.destroy()
      settle({ _tag: "Refused", status, headers, message })
    })
  })
  request.once("error", (error) => settle({ _tag: "Unreachable", message: error.message, cause: error }))
  request.end()
  return () => {
    if (settled?._tag === "Switched") settled.socket.destroy()
    if (settled !== undefined) return
    // Settled without telling `done`: nobody waits for the outcome any more.
    settled = { _tag: "TimedOut" }
    clearTimeout(timer)
    clearTimeout(bodyTimer)
    request.destroy()
    options.givenUp?.()
  }
}
