import { createHmac, timingSafeEqual } from "node:crypto"
import type * as http from "node:http"
import type { Keyring } from "../ClusterKeys.js"

/**
 * Marks a request one node forwards to another. Its presence alone means "answer it yourself, never forward it
 * again" (one hop, no loops): anyone may ask a node that, harmlessly. Only a valid proof makes the request a
 * peer's, whose X-Forwarded-* headers describe the real client and are kept.
 */
export const forwardHeader = "x-pico-forward"

/** A node id as another node sends it in x-pico-forwarded-by; anything else is not one. */
const nodeIdPattern = /^[A-Za-z0-9._~-]{1,128}$/

/** The forwarding node's id as its x-pico-forwarded-by gives it, or "unknown". */
export const forwardingNode = (forwardedBy: string | ReadonlyArray<string> | undefined): string =>
  typeof forwardedBy === "string" && nodeIdPattern.test(forwardedBy) ? forwardedBy : "unknown"

/** How old a proof may be: a forwarded request reaches its node in milliseconds; the rest is clock skew. */
const VALIDITY_MS = 30_000

const VERSION = "v1"

/** The headers a proof covers, as the receiving node reads them (repeats joined with ", " by Node). */
const covered = [
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "x-pico-endpoint",
  "host",
] as const

/**
 * Proves forwarded requests come from a node of the cluster: an HMAC, with the cluster key's "forward" subkey,
 * over a timestamp, the method, the target and the forwarding headers. Without a cluster key no request is
 * provably a peer's, so `sign` writes the bare loop guard `true` and `verify` trusts nothing.
 */
export interface PeerProof {
  /** The x-pico-forward value for a request with these method, target and headers (a flat raw list). */
  readonly sign: (method: string, url: string, headers: ReadonlyArray<string>) => string
  /** Whether the request carries a valid, fresh proof: then it is a peer's. */
  readonly verify: (req: http.IncomingMessage) => boolean
  /**
   * Whether the request is taken as a peer's for the node's own books (capture, traffic counts, the access log's
   * `from-node`): with a cluster key, a proven one; without, any that says so, since nothing can be proven.
   */
  readonly isPeer: (req: http.IncomingMessage) => boolean
}

const message = (timestamp: string, method: string, url: string, values: ReadonlyArray<string>): string =>
  `pico-forward ${VERSION}\n${timestamp}\n${method}\n${url}\n${values.join("\n")}`

const mac = (key: Buffer, text: string): Buffer => createHmac("sha256", key).update(text).digest()

/** Each covered header's value in a flat raw list, repeats joined as Node joins them on the other side. */
const valuesIn = (headers: ReadonlyArray<string>): Array<string> =>
  covered.map((name) => {
    const values: Array<string> = []
    for (let i = 0; i < headers.length; i += 2)
      // Trimmed, as the receiving node's parser trims it.
      if ((headers[i] as string).toLowerCase() === name) values.push((headers[i + 1] as string).trim())
    return values.join(", ")
  })

const unprovable: PeerProof = {
  sign: () => "true",
  verify: () => false,
  isPeer: (req) => req.headers[forwardHeader] !== undefined,
}

export const make = (keyring: Keyring | undefined, now: () => number = Date.now): PeerProof => {
  if (keyring === undefined) return unprovable
  const keys = keyring.subkeys("forward")
  const signingKey = keys[0] as Buffer
  const proof: PeerProof = {
    sign: (method, url, headers) => {
      const timestamp = String(now())
      return `${VERSION}.${timestamp}.${mac(signingKey, message(timestamp, method, url, valuesIn(headers))).toString("base64url")}`
    },
    verify: (req) => {
      const proof = req.headers[forwardHeader]
      if (typeof proof !== "string") return false
      const [version, timestamp, signature, extra] = proof.split(".")
      if (version !== VERSION || timestamp === undefined || signature === undefined || extra !== undefined)
        return false
      const age = now() - Number(timestamp)
      if (!(Math.abs(age) <= VALIDITY_MS)) return false
      const given = Buffer.from(signature, "base64url")
      const text = message(
        timestamp,
        req.method ?? "",
        req.url ?? "",
        covered.map((name) => {
          const value = req.headers[name]
          return Array.isArray(value) ? value.join(", ") : (value ?? "")
        }),
      )
      // Any key of the ring verifies, so nodes keep trusting each other through a key rotation.
      return keys.some((key) => {
        const expected = mac(key, text)
        return expected.length === given.length && timingSafeEqual(expected, given)
      })
    },
    isPeer: (req) => proof.verify(req),
  }
  return proof
}
