import { describe, expect, it } from "vitest"
import {
  type HttpConnection,
  HttpConnections,
  type ResponseListener,
} from "../src/Tunnel/internal/HttpConnections.js"
import { MemoryChannel } from "../src/Tunnel/internal/MemoryChannel.js"
import { Session } from "../src/Tunnel/internal/Session.js"

/**
 * The proxy's kept-alive connections over one session (HttpConnections), against a far end that answers every
 * request on a stream with a small response, as an agent's service would: what state a connection is in when it
 * goes back to the pool, and who may still abandon it.
 */
const link = () => {
  const toFar = new MemoryChannel()
  const toNear = new MemoryChannel()
  const near = new Session(toFar, { role: "server" })
  const far = new Session(toNear, { role: "client", holdUnserved: true })
  toFar.peer = far
  toNear.peer = near
  far.onStream((stream) => {
    stream.on("error", () => {}) // reset when the near end abandons it
    stream.on("data", (chunk: Buffer) => {
      for (let at = chunk.indexOf("\r\n\r\n"); at >= 0; at = chunk.indexOf("\r\n\r\n", at + 4))
        stream.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
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
