import type * as http from "node:http"
import { describe, expect, it } from "vitest"
import {
  clientResponseHeaders,
  type HeaderPolicy,
  responseHead,
  upstreamRequestHeaders,
} from "../src/Proxy/Headers.js"

/** A message as Node parses it: a flat raw list, and names lower-cased with repeats joined (the first Host wins). */
const message = (raw: ReadonlyArray<string>, socket: object = { remoteAddress: "203.0.113.7" }) => {
  const headers: Record<string, string> = {}
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase()
    const value = raw[i + 1] as string
    if (headers[name] === undefined) headers[name] = value
    else if (name !== "host") headers[name] = `${headers[name]}, ${value}`
  }
  return { rawHeaders: [...raw], headers, socket } as unknown as http.IncomingMessage
}

const plain: HeaderPolicy = { keepUpgrade: false, credentials: "strip", fromPeer: false }

/** The headers sent upstream, less the X-Forwarded-* ones Pico appends for a client that is not a peer. */
const forwarded = (raw: ReadonlyArray<string>, policy: Partial<HeaderPolicy> = {}) =>
  upstreamRequestHeaders(message(raw), { ...plain, ...policy, fromPeer: true })

const hopByHop = [
  ["Connection", "keep-alive"],
  ["Keep-Alive", "timeout=5"],
  ["Proxy-Connection", "keep-alive"],
  ["Proxy-Authenticate", "Basic"],
  ["Proxy-Authorization", "Basic eDp5"],
  ["TE", "trailers"],
  ["Trailer", "X-Checksum"],
  ["Transfer-Encoding", "chunked"],
  ["Upgrade", "websocket"],
].flat()

describe("request headers for the next hop", () => {
  it("keeps end-to-end headers in order, case and repeats, and drops hop-by-hop ones", () => {
    const endToEnd = ["Host", "e.example.com", "Accept", "a", "x-custom", "1", "X-Custom", "2"]
    expect(forwarded([...hopByHop, ...endToEnd])).toEqual(endToEnd)
  })

  it("drops the headers that Connection lists, whatever their case and spacing", () => {
    const raw = ["Connection", "close,  X-Hop ,Keep-Alive", "X-Hop", "1", "X-Kept", "2", "Keep-Alive", "t=1"]
    expect(forwarded(raw)).toEqual(["X-Kept", "2"])
    expect(forwarded(["Connection", "X-Hop", "X-Hop", "1"])).toEqual([])
    // The body's length and the Host stay whatever Connection says: without them the service would read the
    // body as a request of its own.
    expect(
      forwarded([
        "Connection",
        "Content-Length, host, X-Hop",
        "Content-Length",
        "5",
        "Host",
        "a",
        "X-Hop",
        "1",
      ]),
    ).toEqual(["Content-Length", "5", "Host", "a"])
    // close is an option and a name: a field called Close goes with it.
    expect(forwarded(["Connection", " Close", "Close", "x", "X-Kept", "2"])).toEqual(["X-Kept", "2"])
  })

  it("refuses two Host headers, in any case", () => {
    expect(forwarded(["Host", "a.example.com", "HOST", "b.example.com"])).toBeUndefined()
    expect(forwarded(["Host", "a.example.com", "Accept", "a"])).toEqual([
      "Host",
      "a.example.com",
      "Accept",
      "a",
    ])
  })

  it("strips Pico's credentials unless they are forwarded to a peer, and never forwards the peer proof", () => {
    const credentials = ["X-Pico-Authorization", "Bearer p", "Authorization", "Bearer a"]
    const raw = [...credentials, "X-Pico-Forward", "v1.1.x", "Accept", "*/*"]
    expect(forwarded(raw)).toEqual(["Authorization", "Bearer a", "Accept", "*/*"])
    expect(forwarded(raw, { credentials: "strip authorization" })).toEqual(["Accept", "*/*"])
    expect(forwarded(raw, { credentials: "forward" })).toEqual([...credentials, "Accept", "*/*"])
  })

  it("puts the request id in X-Request-Id, in place of the client's, and drops Pico's markers between nodes", () => {
    const markers = ["X-Pico-Forwarded-By", "node-1", "X-Pico-Replay", "r-0"]
    const raw = ["X-Request-Id", "from-client", ...markers, "Accept", "*/*"]
    expect(forwarded(raw)).toEqual(["X-Request-Id", "from-client", "Accept", "*/*"])
    expect(upstreamRequestHeaders(message(raw), { ...plain, fromPeer: true }, "r-1")).toEqual([
      "Accept",
      "*/*",
      "X-Request-Id",
      "r-1",
    ])
  })

  it("passes a WebSocket upgrade: Upgrade and Connection: Upgrade only", () => {
    const raw = ["Connection", "Upgrade, X-Hop", "X-Hop", "1", ...hopByHop.slice(2)]
    expect(forwarded(raw, { keepUpgrade: true })).toEqual(["Upgrade", "websocket", "Connection", "Upgrade"])
  })

  it("describes the client in X-Forwarded-*, appending to For and replacing Proto and Host", () => {
    const raw = [
      "Host",
      "e.example.com",
      "X-Forwarded-For",
      "198.51.100.1",
      "x-forwarded-for",
      "198.51.100.2",
      "X-Forwarded-Proto",
      "https",
      "X-Forwarded-Host",
      "spoofed.example.com",
    ]
    expect(upstreamRequestHeaders(message(raw), plain)).toEqual([
      "Host",
      "e.example.com",
      "X-Forwarded-For",
      "198.51.100.1, 198.51.100.2, 203.0.113.7",
      "X-Forwarded-Proto",
      "http",
      "X-Forwarded-Host",
      "e.example.com",
    ])
    // From a peer that proved itself, they already describe the client.
    expect(upstreamRequestHeaders(message(raw), { ...plain, fromPeer: true })).toEqual(raw)
  })

  it("gives an HTTP/1.0 request without Host an empty one, and leaves any other as it is", () => {
    const http10 = (raw: ReadonlyArray<string>) =>
      Object.assign(message(raw), { httpVersionMajor: 1, httpVersionMinor: 0 })
    expect(upstreamRequestHeaders(http10([]), plain)?.slice(0, 2)).toEqual(["Host", ""])
    expect(upstreamRequestHeaders(http10(["Host", "a.example"]), plain)?.slice(0, 2)).toEqual([
      "Host",
      "a.example",
    ])
    expect(
      upstreamRequestHeaders(http10(["Host", "a.example"]), plain)?.filter((v) => v === "Host"),
    ).toHaveLength(1)
  })

  it("names the client by its IPv4 address, and TLS as https; no Host, no X-Forwarded-Host", () => {
    const tls = message([], { remoteAddress: "::ffff:192.0.2.1", encrypted: true })
    expect(upstreamRequestHeaders(tls, plain)).toEqual([
      "X-Forwarded-For",
      "192.0.2.1",
      "X-Forwarded-Proto",
      "https",
    ])
    // A TLS socket that lost its address (reset after the handshake) falls back on its TCP socket's, read at once.
    const lost = message([], { remoteAddress: undefined, _parent: { remoteAddress: "::ffff:192.0.2.9" } })
    expect(upstreamRequestHeaders(lost, plain)?.slice(0, 2)).toEqual(["X-Forwarded-For", "192.0.2.9"])
    const v6 = message([], { remoteAddress: "2001:db8::ffff:1" })
    expect(upstreamRequestHeaders(v6, plain)?.[1]).toBe("2001:db8::ffff:1")
    // No address (the node's own replay): no chain is started; one given gets an "unknown" last hop, so the
    // client's own last entry never passes for the address that reached the node.
    expect(upstreamRequestHeaders(message([], {}), plain)).toEqual(["X-Forwarded-Proto", "http"])
    expect(upstreamRequestHeaders(message(["X-Forwarded-For", "198.51.100.7"], {}), plain)).toEqual([
      "X-Forwarded-For",
      "198.51.100.7, unknown",
      "X-Forwarded-Proto",
      "http",
    ])
  })
})

describe("response headers for the client", () => {
  it("drops hop-by-hop and Connection-listed headers, keeps repeats, and asks to close while draining", () => {
    const endToEnd = ["Set-Cookie", "a=1", "Set-Cookie", "b=2", "Content-Length", "2"]
    const res = message(["Connection", "X-Hop", "X-Hop", "1", ...hopByHop.slice(2), ...endToEnd])
    expect(clientResponseHeaders(res, false, false)).toEqual(endToEnd)
    expect(clientResponseHeaders(res, true, false)).toEqual([...endToEnd, "Connection", "close"])
    expect(clientResponseHeaders(message(endToEnd), false, false)).toEqual(endToEnd)
  })

  it("drops a service's x-pico-error, in any case, and keeps a peer node's", () => {
    const head = message(["X-Pico-Error", "endpoint not found", "x-pico-error", "x", "Content-Length", "4"])
    expect(clientResponseHeaders(head, false, true)).toEqual(["Content-Length", "4"])
    expect(clientResponseHeaders(head, false, false)).toEqual(head.rawHeaders)
  })

  it("drops the names of every Connection header, and takes names from no other header's value", () => {
    const kept = ["X-Ten-Char", "x-named", "X-Named", "1", "Undefined", "2"]
    expect(clientResponseHeaders(message(kept), false, false)).toEqual(kept)
    const twice = [
      "Connection",
      "X-A",
      "X-Ten-Char",
      "x-a",
      "connection",
      "x-b",
      "X-A",
      "1",
      "X-B",
      "2",
      "Undefined",
      "3",
    ]
    expect(clientResponseHeaders(message(twice), false, false)).toEqual([
      "X-Ten-Char",
      "x-a",
      "Undefined",
      "3",
    ])
  })

  it("reads keep-alive or close alone as the option it is, and any other value as a list of names", () => {
    const kept = ["Keep-Alivex", "1", "X-Close", "2"]
    const listed = (value: string) =>
      clientResponseHeaders(message(["Connection", value, ...kept]), false, false)
    for (const option of ["keep-alive", " Keep-Alive\t", "CLOSE", "\tclose "])
      expect(listed(option)).toEqual(kept)
    expect(
      clientResponseHeaders(message(["Connection", "close", "Close", "x", ...kept]), false, false),
    ).toEqual(kept)
    expect(listed("keep-alive, X-Close")).toEqual(["Keep-Alivex", "1"])
    expect(listed("close,Keep-Alivex")).toEqual(["X-Close", "2"])
    expect(listed("X-Close , close")).toEqual(["Keep-Alivex", "1"])
    // Names that only end or start like the options are names.
    expect(listed("X-Close")).toEqual(["Keep-Alivex", "1"])
    expect(listed("Keep-Alivex")).toEqual(["X-Close", "2"])
    expect(
      clientResponseHeaders(
        message(["Connection", "X-Keep-Alive", "X-Keep-Alive", "3", ...kept]),
        false,
        false,
      ),
    ).toEqual(kept)
  })

  it("writes a 101's head with every header, for the raw connection", () => {
    const res = Object.assign(message(["Upgrade", "websocket", "Connection", "Upgrade"]), {
      statusCode: 101,
      statusMessage: "Switching Protocols",
    })
    expect(responseHead(res)).toBe(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    )
  })
})
