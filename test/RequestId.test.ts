import type * as http from "node:http"
import { describe, expect, it } from "vitest"
import { requestIdOf } from "../src/Proxy/RequestId.js"

const withHeader = (value: string | undefined) =>
  ({ headers: value === undefined ? {} : { "x-request-id": value } }) as unknown as http.IncomingMessage

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

describe("a request's id", () => {
  it("is the client's when it is visible ASCII of at most 200 characters", () => {
    expect(requestIdOf(withHeader("trace-4f2a/1"))).toBe("trace-4f2a/1")
    expect(requestIdOf(withHeader("x".repeat(200)))).toBe("x".repeat(200))
  })

  it("is a new UUID when the client sent none, or one that would write anything into the log", () => {
    for (const unusable of [undefined, "", "x".repeat(201), "two words", "line\nbreak", "a, b", "é"])
      expect(requestIdOf(withHeader(unusable))).toMatch(uuid)
    expect(requestIdOf(withHeader(undefined))).not.toBe(requestIdOf(withHeader(undefined)))
  })
})
