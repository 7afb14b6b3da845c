import { describe, expect, it } from "vitest"
import {
  type HttpConnection,
  HttpConnections,
  type ResponseListener,
} from "../src/Tunnel/internal/HttpConnections.js"
import { MemoryChannel } from "../src/Tunnel/internal/MemoryChannel.js"
import { Session, StreamResetError } from "../src/Tunnel/internal/Session.js"

/**
 * The proxy's kept-alive connections over one session (HttpConnections), against a far end that answers every
 * request on a stream with a small response, as an agent's service would: what state a connection is in when it
 * goes back to the pool, and who may still abandon it.
 */
const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

/** How each stream the far end accepted ended, newest last: the error it was reset with, or undefined. */
const farEndings: Array<Promise<Error | undefined>> = []

/**
 * A session whose far end answers each request head on a stream with `answer` (written in the pieces given, in
 * turn), or ends the stream after them when `end` is set.
 */
const link = (answer: ReadonlyArray<string> = [okResponse], end = false) => {
  const toFar = new MemoryChannel()
  const toNear = new MemoryChannel()
  const near = new Session(toFar, { role: "server" })
  const far = new Session(toNear, { role: "client", holdUnserved: true })
  toFar.peer = far
  toNear.peer = near
  far.onStream((stream) => {
    farEndings.push(
      new Promise((resolve) => {
        stream.on("error", resolve) // reset when the near end abandons it
        stream.on("close", () => resolve(undefined))
      }),
    )
    stream.on("data", (chunk: Buffer) => {
      for (let at = chunk.indexOf("\r\n\r\n"); at >= 0; at = chunk.indexOf("\r\n\r\n", at + 4)) {
        for (const piece of answer) stream.write(Buffer.from(piece, "latin1"))
        if (end) stream.end()
      }
    })
  })
  return new HttpConnections(() => near.openStream())
}

/** Sends one GET on `connection`; `onBody` runs on each body chunk. Resolves with the listener once it ended. */
const exchange = (connection: HttpConnection, onBody: () => void = () => {}) =>
  new Promise<ResponseListener>((resolve, reject) => {
    const listener: ResponseListener = {
      head: () => {},
      body: onBody,
      end: () => resolve(listener),
      fail: (detail) => reject(new Error(detail)),
    }
    connection.begin(listener, false)
    connection.stream.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    connection.requestSent()
  })

describe("HttpConnections", () => {
  it("reuses a connection whose exchange ended, flowing again even if a slow client had paused it", async () => {
    const connections = link()
    const first = connections.take()
    await exchange(first, () => first.pause())
    const second = connections.take()
    expect(second).toBe(first)
    expect(second.stream.isPaused()).toBe(false)
    await exchange(second)
  })

  it("lets only the exchange using a connection abandon it", async () => {
    const connections = link()
    const connection = connections.take()
    const finished = await exchange(connection)
    expect(connections.take()).toBe(connection)
    const next = exchange(connection)
    connection.abandon(finished) // the first exchange's late cleanup: the connection is someone else's now
    await next
    expect(connection.stream.destroyed).toBe(false)
    const failures: Array<string> = []
    const owner: ResponseListener = {
      head: () => {},
      body: () => {},
      end: () => {},
      fail: (detail) => failures.push(detail),
    }
    const taken = connections.take()
    taken.begin(owner, false)
    taken.abandon(owner)
    expect(taken.stream.destroyed).toBe(true)
    expect(failures).toEqual(["abandoned"])
  })

  it("reuses the newest idle connection first, and keeps at most 64 idle", async () => {
    const connections = link()
    const taken = Array.from({ length: 65 }, () => connections.take())
    expect(new Set(taken).size).toBe(65)
    for (const connection of taken) await exchange(connection)
    // Released in order: the 65th found 64 idle already and was closed.
    const last = taken[64] as HttpConnection
    expect(last.stream.destroyed).toBe(true)
    const reused = Array.from({ length: 64 }, () => connections.take())
    expect(reused.map((connection) => taken.indexOf(connection))).toEqual(
      Array.from({ length: 64 }, (_, i) => 63 - i),
    )
    expect(reused.some((connection) => connection.stream.destroyed)).toBe(false)
    expect(connections.take()).not.toBe(last)
  })
})

/** What one exchange heard: the head's status, the body, and how it ended. */
interface Heard {
  status?: number
  headers?: ReadonlyArray<string>
  body: string
  ended?: "end" | { readonly detail: string; readonly invalid: boolean }
}

/** Sends one request (a HEAD when `headOnly`) and collects what the listener hears until the exchange ends. */
const hear = (connection: HttpConnection, headOnly = false) =>
  new Promise<Heard>((resolve) => {
    const heard: Heard = { body: "" }
    connection.begin(
      {
        head: (head) => {
          heard.status = head.statusCode
          heard.headers = head.rawHeaders
        },
        body: (chunk) => {
          heard.body += chunk.toString("latin1")
        },
        end: () => resolve({ ...heard, ended: "end" }),
        fail: (detail, invalid) => resolve({ ...heard, ended: { detail, invalid } }),
      },
      headOnly,
    )
    connection.stream.write(`${headOnly ? "HEAD" : "GET"} / HTTP/1.1\r\nHost: x\r\n\r\n`)
    connection.requestSent()
  })

const refused = (detail: string | RegExp) => ({ detail: expect.stringMatching(detail), invalid: true })

describe("HttpConnections reading a response", () => {
  it.each<[string, ReadonlyArray<string>, Partial<Heard>]>([
    [
      "a Content-Length body in pieces",
      ["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", "c", "de"],
      {
        status: 200,
        body: "abcde",
        ended: "end",
      },
    ],
    [
      "a head and body in one piece",
      ["HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc"],
      {
        status: 201,
        body: "abc",
      },
    ],
    [
      "a chunked body",
      ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"],
      {
        body: "abc",
        ended: "end",
      },
    ],
    ["an empty body", ["HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"], { body: "", ended: "end" }],
    ["informational heads first", ["HTTP/1.1 100 Continue\r\n\r\n", okResponse], { status: 200, body: "ok" }],
    [
      "a 204 whatever its length says",
      ["HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\n"],
      {
        status: 204,
        body: "",
        ended: "end",
      },
    ],
    [
      "a 304 naming a coding, with no body to misread",
      ["HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: gzip\r\n\r\n"],
      {
        status: 304,
        ended: "end",
      },
    ],
    [
      "a status under 100",
      ["HTTP/1.1 000 OK\r\nContent-Length: 0\r\n\r\n"],
      {
        ended: refused(/^invalid status code 0$/),
      },
    ],
    [
      "101 unasked",
      ["HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n"],
      {
        ended: refused(/^switched protocols unasked$/),
      },
    ],
    [
      "a transfer coding other than chunked",
      ["HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz"],
      {
        ended: refused(/^unsupported transfer coding "gzip"$/),
      },
    ],
    [
      "Transfer-Encoding given twice",
      ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"],
      { ended: refused(/^unsupported transfer coding "chunked, chunked"$/) },
    ],
    [
      "a bad chunk after the head",
      ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\nzz\r\n"],
      {
        status: 200,
        body: "ab",
        ended: refused(/^invalid response: /),
      },
    ],
  ])("hears %s", async (_case, answer, expected) => {
    const heard = await hear(link(answer).take())
    expect(heard).toMatchObject(expected)
  })

  it("keeps the headers of the head as they came, and Content-Length among them", async () => {
    const heard = await hear(link(["HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nok"]).take())
    expect(heard.headers).toEqual(["X-A", "1", "Content-Length", "2"])
  })

  it("reads no body for HEAD, whatever the head says, a coding included", async () => {
    const connections = link(["HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"])
    expect(await hear(connections.take(), true)).toMatchObject({ status: 200, body: "", ended: "end" })
  })

  it("completes a body that runs until the stream ends, and fails one cut short of its length", async () => {
    expect(await hear(link(["HTTP/1.1 200 OK\r\n\r\nall of it"], true).take())).toMatchObject({
      body: "all of it",
      ended: "end",
    })
    expect(
      await hear(link(["HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"], true).take()),
    ).toMatchObject({ body: "short", ended: { detail: "connection closed", invalid: false } })
    expect(
      await hear(link(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n"], true).take()),
    ).toMatchObject({
      body: "ab",
      ended: { detail: expect.stringMatching(/^invalid response: /), invalid: true },
    })
  })

  it("offers a connection again only once both the request and the response are done, and only if kept alive", async () => {
    const connections = link()
    const connection = connections.take()
    const heard = new Promise<void>((resolve, reject) => {
      connection.begin({ head: () => {}, body: () => {}, end: resolve, fail: reject }, false)
    })
    connection.stream.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await heard
    // The response is done, the request is not: not free yet.
    expect(connections.take()).not.toBe(connection)
    connection.requestSent()
    expect(connections.take()).toBe(connection)
    expect(connection.reused).toBe(true)

    const closing = link(["HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"])
    const once = closing.take()
    expect(once.reused).toBe(false)
    await hear(once)
    expect(once.stream.destroyed).toBe(true)
    expect(closing.take()).not.toBe(once)
  })

  it("drops a connection whose service sends a response nobody asked for", async () => {
    const connections = link([okResponse, okResponse])
    const connection = connections.take()
    expect(await hear(connection)).toMatchObject({ body: "ok", ended: "end" })
    await waitUntil(() => connection.stream.destroyed)
    expect(connections.take()).not.toBe(connection)
  })

  it("reports the stream's own failure as not invalid: the service may never have had the request", async () => {
    const connection = link([]).take()
    const heard = hear(connection)
    connection.stream.destroy(new Error("reset by the far end"))
    expect((await heard).ended).toEqual({ detail: "reset by the far end", invalid: false })
  })

  it("resets a kept connection its far end finished (the service closed it), as docs/protocol.md §8 says", async () => {
    const connections = link([okResponse], true)
    const connection = connections.take()
    await exchange(connection)
    expect(await farEndings.at(-1)).toBeInstanceOf(StreamResetError)
    expect(connections.take()).not.toBe(connection)
  })

  it("closes every idle connection when the pool is destroyed", async () => {
    const connections = link()
    const connection = connections.take()
    await hear(connection)
    connections.destroy()
    expect(connection.stream.destroyed).toBe(true)
    expect(connections.take()).not.toBe(connection)
  })

  it("holds the response while paused, and lets it flow again on resume", async () => {
    const connections = link(["HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", "cd"])
    const connection = connections.take()
    connection.pause()
    let ended = false
    const heard = hear(connection).then((result) => {
      ended = true
      return result
    })
    await waitUntil(() => connection.stream.readableLength > 0)
    expect(ended).toBe(false)
    connection.resume()
    expect(await heard).toMatchObject({ body: "abcd", ended: "end" })
  })
})

/** Waits, turn by turn of the event loop, until `done` holds (at most 1,000 turns). */
const waitUntil = async (done: () => boolean) => {
  for (let turn = 0; turn < 1000 && !done(); turn++) await new Promise((resolve) => setImmediate(resolve))
  expect(done()).toBe(true)
}
