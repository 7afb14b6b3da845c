import { Either } from "effect"
import { describe, expect, it } from "vitest"
import { EndpointId, isValidEndpointId } from "../src/Domain/EndpointId.js"
import { endpointIdFromHeaders } from "../src/Proxy/EndpointId.js"

describe("endpoint id from a request", () => {
  it("prefers x-pico-endpoint over Host", () => {
    expect(endpointIdFromHeaders({ "x-pico-endpoint": "from-header", host: "from-host.example.com" })).toBe(
      "from-header",
    )
  })

  it("takes a TCP upgrade's from its /pico/v1/tcp/ target, query cut, unless x-pico-endpoint names one", () => {
    const host = { host: "from-host.example.com" }
    expect(endpointIdFromHeaders(host, "/pico/v1/tcp/db")).toBe("db")
    expect(endpointIdFromHeaders(host, "/pico/v1/tcp/db?kind=tcp")).toBe("db")
    expect(endpointIdFromHeaders({ ...host, "x-pico-endpoint": "explicit" }, "/pico/v1/tcp/db")).toBe(
      "explicit",
    )
    expect(endpointIdFromHeaders(host, "/other/pico/v1/tcp/")).toBe("from-host")
    expect(endpointIdFromHeaders(host)).toBe("from-host")
  })

  it("takes the first label of a dotted Host, port stripped", () => {
    expect(endpointIdFromHeaders({ host: "my-endpoint.pico.example.com:8000" })).toBe("my-endpoint")
    expect(endpointIdFromHeaders({ host: "xyz.pico.example.com" })).toBe("xyz")
    // Names that merely contain an address are names.
    expect(endpointIdFromHeaders({ host: "a1.2.3.4" })).toBe("a1")
    expect(endpointIdFromHeaders({ host: "10.0.0.1.nip.io" })).toBe("10")
  })

  it("finds none in single-label hosts and IP literals", () => {
    for (const host of [
      "localhost:9000",
      "localhost",
      "10.0.0.1:8000",
      "127.0.0.1",
      "192.168.100.200:8000",
      "[::1]:8000",
      "[v1.fe80::1]:8000",
      ":e.example.com",
      "",
      ".example.com",
    ]) {
      expect(endpointIdFromHeaders({ host })).toBeUndefined()
    }
    expect(endpointIdFromHeaders({})).toBeUndefined()
    expect(endpointIdFromHeaders({ "x-pico-endpoint": "", host: "localhost" })).toBeUndefined()
  })
})

describe("endpoint id rules", () => {
  it("allows 1-128 URL-safe characters", () => {
    for (const id of ["a", "my-endpoint", "A.b_c~d-9", "...", ".a", "x".repeat(128)])
      expect(isValidEndpointId(id)).toBe(true)
    for (const id of ["", "x".repeat(129), "a/b", "a b", "a%20", "é", "a?b", ".", ".."])
      expect(isValidEndpointId(id)).toBe(false)
  })

  it("brands a valid id, and refuses another naming the rule", () => {
    expect(EndpointId.either("my-endpoint")).toEqual(Either.right("my-endpoint"))
    expect(EndpointId.either("a/b")).toEqual(
      Either.left([
        {
          message:
            'invalid endpoint id "a/b": must be 1-128 characters of A-Z a-z 0-9 . _ ~ -, not . or .. alone',
          meta: undefined,
        },
      ]),
    )
    // As docs/library.md says: the constructor throws that list (not an Error); `is` only answers.
    expect(() => EndpointId("a/b")).toThrow(
      expect.arrayContaining([
        expect.objectContaining({ message: expect.stringMatching(/^invalid endpoint id/) }),
      ]),
    )
    expect([EndpointId.is("my-endpoint"), EndpointId.is("a/b")]).toEqual([true, false])
  })
})
