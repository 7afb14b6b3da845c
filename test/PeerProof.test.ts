import type * as http from "node:http"
import { describe, expect, it } from "vitest"
import { makeKeyring } from "../src/ClusterKeys.js"
import * as PeerProof from "../src/Proxy/PeerProof.js"
import { newClusterKey } from "./support/tokens.js"

/** A request as the receiving node sees it: Node lower-cases names and joins repeats with ", ". */
const received = (method: string, url: string, raw: ReadonlyArray<string>): http.IncomingMessage => {
  const headers: Record<string, string> = {}
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase()
    headers[name] = headers[name] === undefined ? (raw[i + 1] as string) : `${headers[name]}, ${raw[i + 1]}`
  }
  return { method, url, headers } as unknown as http.IncomingMessage
}

const forwarding = [
  "Host",
  "e.example.com",
  "X-Forwarded-For",
  "203.0.113.7",
  "X-Forwarded-Proto",
  "https",
  "X-Forwarded-Host",
  "e.example.com",
]

const signedRequest = (proof: PeerProof.PeerProof, raw: ReadonlyArray<string> = forwarding, url = "/a?b=1") =>
  received("POST", url, [...raw, PeerProof.forwardHeader, proof.sign("POST", url, raw)])

describe("PeerProof", () => {
  const key = newClusterKey()
  const proof = PeerProof.make(makeKeyring([key]))

  it("verifies what a node of the same cluster signed", () => {
    expect(proof.verify(signedRequest(proof))).toBe(true)
    // Repeated headers reach the node joined with ", ", as Node joins them.
    expect(proof.verify(signedRequest(proof, [...forwarding, "X-Forwarded-For", "198.51.100.1"]))).toBe(true)
  })

  it("goes in x-pico-forward as v1.<ms>.<HMAC>, and anything else there is refused, never thrown", () => {
    const value = proof.sign("POST", "/a?b=1", forwarding)
    expect(value).toMatch(/^v1\.\d+\.[\w-]{43}$/)
    const withProof = (proofValue?: string) =>
      received(
        "POST",
        "/a?b=1",
        proofValue === undefined ? forwarding : [...forwarding, "X-Pico-Forward", proofValue],
      )
    expect(proof.verify(withProof(value))).toBe(true)
    const [, timestamp, signature] = value.split(".")
    for (const altered of [
      undefined,
      `v2.${timestamp}.${signature}`,
      `v1.${timestamp}`,
      `v1.${timestamp}.${signature?.slice(1)}`,
      `${value}.extra`,
    ])
      expect(proof.verify(withProof(altered)), altered).toBe(false)
  })

  it("keys its proofs with the cluster key's own subkey for forwarding", () => {
    const keyring = makeKeyring([key])
    const purposes: Array<string> = []
    PeerProof.make({
      ...keyring,
      subkeys: (purpose) => {
        purposes.push(purpose)
        return keyring.subkeys(purpose)
      },
    })
    expect(purposes).toEqual(["forward"])
  })

  it("refuses a proof from another cluster, a bare loop guard, and garbage", () => {
    const stranger = PeerProof.make(makeKeyring([newClusterKey()]))
    expect(proof.verify(signedRequest(stranger))).toBe(false)
    for (const value of ["true", "", "v1", "v1.1.x", "v2.1.abc", `v1.${Date.now()}.abc.extra`])
      expect(proof.verify(received("POST", "/a?b=1", [...forwarding, PeerProof.forwardHeader, value]))).toBe(
        false,
      )
  })

  it("covers the method, the target and every forwarding header", () => {
    const good = signedRequest(proof)
    const tampered: Array<[string, Partial<Pick<http.IncomingMessage, "method" | "url" | "headers">>]> = [
      ["method", { method: "GET" }],
      ["target", { url: "/other" }],
      ["client address", { headers: { "x-forwarded-for": "6.6.6.6" } }],
      ["an added client address", { headers: { "x-forwarded-for": "203.0.113.7, 6.6.6.6" } }],
      ["protocol", { headers: { "x-forwarded-proto": "http" } }],
      ["forwarded host", { headers: { "x-forwarded-host": "victim.example.com" } }],
      ["host", { headers: { host: "other.example.com" } }],
      ["endpoint header", { headers: { "x-pico-endpoint": "other" } }],
      [
        "a character moved between headers",
        { headers: { "x-forwarded-for": "203.0.113.", "x-forwarded-proto": "7https" } },
      ],
    ]
    for (const [what, change] of tampered) {
      const req = { ...good, ...change, headers: { ...good.headers, ...change.headers } }
      expect(proof.verify(req as http.IncomingMessage), what).toBe(false)
    }
  })

  it("expires after 30 s either way, for clocks that drift", () => {
    let now = 1_000_000
    const clocked = PeerProof.make(makeKeyring([key]), () => now)
    const req = signedRequest(clocked)
    now += 30_000
    expect(clocked.verify(req)).toBe(true)
    now += 1
    expect(clocked.verify(req)).toBe(false)
    now = 1_000_000 - 30_001
    expect(clocked.verify(req)).toBe(false)
  })

  it("keeps trusting peers through a key rotation: any key of the ring verifies, the first signs", () => {
    const next = newClusterKey()
    const rotated = PeerProof.make(makeKeyring([next, key]))
    expect(rotated.verify(signedRequest(proof))).toBe(true)
    expect(proof.verify(signedRequest(rotated))).toBe(false)
    expect(PeerProof.make(makeKeyring([key, next])).verify(signedRequest(rotated))).toBe(true)
  })

  it("without a cluster key, marks forwards with the bare loop guard and trusts nothing", () => {
    const unkeyed = PeerProof.make(undefined)
    expect(unkeyed.sign("GET", "/", forwarding)).toBe("true")
    expect(unkeyed.verify(signedRequest(proof))).toBe(false)
  })

  it("takes a request as a peer's for the node's books only when proven; without a key, when it says so", () => {
    const claimed = received("GET", "/", [...forwarding, PeerProof.forwardHeader, "true"])
    const client = received("GET", "/", forwarding)
    expect([proof.isPeer(signedRequest(proof)), proof.isPeer(claimed), proof.isPeer(client)]).toEqual([
      true,
      false,
      false,
    ])
    const unkeyed = PeerProof.make(undefined)
    expect([unkeyed.isPeer(claimed), unkeyed.isPeer(client)]).toEqual([true, false])
  })

  it("names the forwarding node by its x-pico-forwarded-by, or unknown when that is no node id", () => {
    expect(PeerProof.forwardingNode("n1-abc")).toBe("n1-abc")
    expect(
      [undefined, "", "a b", "x".repeat(129), ["n1", "n2"]].map((value) => PeerProof.forwardingNode(value)),
    ).toEqual(["unknown", "unknown", "unknown", "unknown", "unknown"])
  })
})
