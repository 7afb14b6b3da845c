import { createRequire } from "node:module"
import { afterEach, describe, expect, it, vi } from "vitest"
import { ResponseParser } from "../src/Tunnel/internal/ResponseParser.js"

/** The binding's class, whose `close` frees the native parser: called once per parser, or its memory leaks. */
const { HTTPParser } = createRequire(import.meta.url)("_http_common") as {
  HTTPParser: { prototype: { close(): void; initialize(...args: Array<unknown>): void } }
}

/**
 * ResponseParser drives Node's own (undocumented) HTTP parser binding. These tests pin what Pico relies on, so a
 * Node release that changes the binding fails here, on every Node version the suite runs, not in production.
 */

type Event = readonly [string, ...Array<unknown>]

const parse = (pieces: ReadonlyArray<string>, options: { headOnly?: boolean; close?: boolean } = {}) => {
  const events: Array<Event> = []
  const parser = new ResponseParser({
    head: (status, message, headers, keepAlive) => {
      events.push(["head", status, message, headers, keepAlive])
      return options.headOnly === true ? "none" : "parse"
    },
    body: (chunk) => events.push(["body", chunk.toString("latin1")]),
    complete: () => {
      events.push(["complete"])
      if (options.close === true) parser.close()
    },
  })
  for (const piece of pieces) {
    const error = parser.execute(Buffer.from(piece, "latin1"))
    if (error instanceof Error) events.push(["error", (error as Error & { code?: string }).code])
  }
  return { events, parser }
}

const bodyOf = (events: ReadonlyArray<Event>) =>
  events
    .filter(([kind]) => kind === "body")
    .map(([, text]) => text)
    .join("")

describe("ResponseParser (Node's HTTP parser, without its client)", () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it("reports the head with raw headers and keep-alive, the body and the end", () => {
    const { events } = parse([
      "HTTP/1.1 201 Created\r\nContent-Length: 3\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n\r\nabc",
    ])
    expect(events).toEqual([
      ["head", 201, "Created", ["Content-Length", "3", "Set-Cookie", "a", "Set-Cookie", "b"], true],
      ["body", "abc"],
      ["complete"],
    ])
  })

  it("gives the same result however the bytes are split", () => {
    const whole =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n"
    const { events } = parse([...whole])
    expect(events[0]).toEqual(["head", 200, "OK", ["Transfer-Encoding", "chunked"], true])
    expect(bodyOf(events)).toBe("abcde")
    expect(events.at(-1)).toEqual(["complete"])
  })

  it("skips the body of a HEAD response, and parses the next response after it", () => {
    const { events } = parse(
      ["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
      { headOnly: true },
    )
    expect(events.filter(([kind]) => kind === "complete")).toHaveLength(2)
    expect(bodyOf(events)).toBe("")
  })

  it("stops at the end of a head whose body the caller reads, and parses the next message after a reset", () => {
    const events: Array<Event> = []
    const parser = new ResponseParser({
      head: (status) => {
        events.push(["head", status])
        return status === 200 ? "own" : "parse"
      },
      body: (chunk) => events.push(["body", chunk.toString()]),
      complete: () => events.push(["complete"]),
    })
    const bytes = Buffer.from(
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 201 OK\r\nContent-Length: 1\r\n\r\nx",
    )
    const headLength = parser.execute(bytes)
    expect(headLength).toBe(38)
    expect(events).toEqual([["head", 200], ["complete"]])
    parser.reset()
    expect(parser.execute(bytes.subarray((headLength as number) + 3))).toBe(39)
    expect(events.slice(2)).toEqual([["head", 201], ["body", "x"], ["complete"]])
  })

  it("reports informational heads as heads, then the final one", () => {
    const { events } = parse(["HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    expect(events.map(([kind, status]) => (kind === "head" ? status : kind))).toEqual([
      100,
      "complete",
      200,
      "complete",
    ])
  })

  it("delivers a head of more than 32 headers whole, in order", () => {
    const lines = Array.from({ length: 70 }, (_, i) => `X-${i}: ${i}\r\n`).join("")
    const { events } = parse([`HTTP/1.1 200 OK\r\n${lines}Content-Length: 0\r\n\r\n`])
    const headers = events[0]?.[3] as Array<string>
    expect(headers).toHaveLength(142)
    expect(headers.slice(0, 2)).toEqual(["X-0", "0"])
    expect(headers.slice(-4)).toEqual(["X-69", "69", "Content-Length", "0"])
  })

  it("starts the next head afresh after a head of more than 32 headers", () => {
    const lines = Array.from({ length: 40 }, (_, i) => `X-${i}: ${i}\r\n`).join("")
    const { events } = parse([
      `HTTP/1.1 200 OK\r\n${lines}Content-Length: 0\r\n\r\n`,
      "HTTP/1.1 204 No Content\r\nY: 1\r\n\r\n",
    ])
    const heads = events.filter(([kind]) => kind === "head")
    expect(heads[0]?.[3]).toHaveLength(82)
    expect(heads[1]?.[3]).toEqual(["Y", "1"])
  })

  it("parses nothing once closed, even after a reset, and may be closed twice", () => {
    const { parser } = parse([])
    parser.close()
    parser.close()
    // A freed native parser is never set up again.
    const setUps = vi.spyOn(HTTPParser.prototype, "initialize")
    parser.reset()
    expect(setUps).not.toHaveBeenCalled()
    expect(parser.execute(Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))).toBe(0)
    expect(parser.finish()).toBeUndefined()
  })

  it("parses nothing asked for from inside its own callback, which would re-enter the native parser", () => {
    const nested: Array<number | Error> = []
    const parser: ResponseParser = new ResponseParser({
      head: () => {
        nested.push(parser.execute(Buffer.from("HTTP/1.1 200 OK\r\n\r\n")))
        return "parse"
      },
      body: () => {},
      complete: () => {},
    })
    expect(parser.execute(Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))).toBe(38)
    expect(nested).toEqual([0])
  })

  it("says a response without a length and without keep-alive ends with the stream", () => {
    const events: Array<Event> = []
    const parser = new ResponseParser({
      head: (_status, _message, _headers, keepAlive) => {
        events.push(["head", keepAlive])
        return "parse"
      },
      body: (chunk) => events.push(["body", chunk.toString()]),
      complete: () => events.push(["complete"]),
    })
    expect(parser.execute(Buffer.from("HTTP/1.1 200 OK\r\n\r\nto the end"))).toBe(29)
    expect(events).toEqual([
      ["head", false],
      ["body", "to the end"],
    ])
    expect(parser.finish()).toBeUndefined()
    expect(events.at(-1)).toEqual(["complete"])
  })

  it("refuses what Node's client refuses", () => {
    const refused = (response: string) => parse([response]).events.find(([kind]) => kind === "error")?.[1]
    expect(refused("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")).toBe(
      "HPE_UNEXPECTED_CONTENT_LENGTH",
    )
    expect(refused("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")).toMatch(
      /^HPE_/,
    )
    expect(refused("HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n")).toMatch(/^HPE_/)
    expect(refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")).toMatch(/^HPE_/)
    expect(refused(`HTTP/1.1 200 OK\r\nX: ${"a".repeat(17 * 1024)}\r\n\r\n`)).toBe("HPE_HEADER_OVERFLOW")
    expect(refused("HTTP/1.1 200 OK\r\nX : a\r\n\r\n")).toMatch(/^HPE_/)
    expect(refused("garbage\r\n\r\n")).toMatch(/^HPE_/)
  })

  it("may be closed from its own callback, and parses nothing after", () => {
    const { events, parser } = parse(
      ["HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
      { close: true },
    )
    expect(events.filter(([kind]) => kind === "complete").length).toBeGreaterThanOrEqual(1)
    expect(parser.execute(Buffer.from("HTTP/1.1 200 OK\r\n\r\n"))).toBe(0)
    expect(parser.finish()).toBeUndefined()
  })

  it("frees the native parser once when closed, and only after a callback that closed it has returned", () => {
    const frees = vi.spyOn(HTTPParser.prototype, "close")
    const { parser } = parse([])
    parser.close()
    parser.close()
    expect(frees).toHaveBeenCalledTimes(1)
    // Freed from inside its own callback, the native parser would crash the process: a stub records when it
    // would have been freed instead (this one parser is left to the collector).
    let inCallback = false
    const freedInCallback: Array<boolean> = []
    frees.mockImplementation(() => {
      freedInCallback.push(inCallback)
    })
    const closing: ResponseParser = new ResponseParser({
      head: () => "parse",
      body: () => {},
      complete: () => {
        inCallback = true
        closing.close()
        inCallback = false
      },
    })
    closing.execute(Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    expect(freedInCallback).toEqual([false])
  })
})
