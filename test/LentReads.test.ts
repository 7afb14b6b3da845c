import { once } from "node:events"
import * as net from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { LentReads } from "../src/Tunnel/internal/LentReads.js"
import { waitFor } from "./support/http.js"

const servers: Array<net.Server> = []
afterEach(() => {
  for (const server of servers.splice(0)) server.close()
})

/** LentReads connected to a server on an ephemeral port, and that server's end, which the test writes to. */
const connected = async () => {
  const server = net.createServer()
  servers.push(server)
  server.listen(0, "127.0.0.1")
  await once(server, "listening")
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  const accepted = once(server, "connection")
  const reads = new LentReads("127.0.0.1", port)
  const [peer] = (await accepted) as [net.Socket]
  return { reads, peer }
}

interface Lent {
  readonly text: string
  /** The view as it was given, read again later: a reused buffer would show the newer bytes. */
  readonly view: Buffer
}

describe("LentReads", () => {
  it("pushes copies for the HTTP client until taken, then lends each read and reuses its buffer while nobody holds it", async () => {
    const { reads, peer } = await connected()
    const handshake: Array<string> = []
    reads.socket.on("data", (chunk: Buffer) => handshake.push(chunk.toString()))
    peer.write("HTTP/1.1 101")
    await waitFor("the handshake copy", () => handshake.length === 1)
    reads.socket.removeAllListeners("data")

    const lent: Array<Lent> = []
    let hold = false
    reads.take((view) => {
      lent.push({ text: view.toString(), view })
      return hold
    })
    for (const text of ["one", "two", "three"]) {
      if (text === "three") hold = true
      peer.write(text)
      await waitFor(`the read of "${text}"`, () => lent.at(-1)?.text === text)
    }
    hold = false
    peer.write("four")
    await waitFor('the read of "four"', () => lent.at(-1)?.text === "four")

    expect(handshake).toEqual(["HTTP/1.1 101"])
    const [one, two, three, four] = lent
    // "one" and "two" went into the same buffer, and "three" too: nothing held "two".
    expect(one?.view.buffer).toBe(two?.view.buffer)
    expect(two?.view.buffer).toBe(three?.view.buffer)
    expect(one?.view.toString()).toBe("thr")
    // "three" was held, so "four" went into a new buffer and "three" is still there.
    expect(four?.view.buffer).not.toBe(three?.view.buffer)
    expect(three?.view.toString()).toBe("three")
    expect(reads.stats).toEqual({ reads: 5, buffers: 2 })

    const ended = once(reads.socket, "end")
    peer.end()
    await ended
    reads.socket.destroy()
  })

  it("moves on to a new buffer when the reader throws, as it may have handed out views before", async () => {
    const { reads, peer } = await connected()
    const views: Array<Buffer> = []
    reads.take((view) => {
      views.push(view)
      if (view.toString() === "boom") throw new Error("a handler failed")
      return false
    })
    // The error reaches the process as uncaught, as any error thrown from socket I/O would: caught here instead
    // of by the test runner, which would fail the run.
    const runners = process.listeners("uncaughtException")
    process.removeAllListeners("uncaughtException")
    const uncaught = once(process, "uncaughtException")
    try {
      peer.write("boom")
      expect(((await uncaught)[0] as Error).message).toBe("a handler failed")
    } finally {
      for (const listener of runners) process.on("uncaughtException", listener)
    }
    peer.write("next")
    await waitFor('the read of "next"', () => views.length === 2)
    expect(views[1]?.buffer).not.toBe(views[0]?.buffer)
    expect(views[0]?.toString()).toBe("boom")
    reads.socket.destroy()
    peer.destroy()
  })

  it("gives the taker first what arrived before it and nobody read", async () => {
    const { reads, peer } = await connected()
    peer.write("early")
    await waitFor("the early bytes", () => reads.socket.readableLength === 5)
    const taken: Array<string> = []
    reads.take((view) => {
      taken.push(view.toString())
      return false
    })
    expect(taken).toEqual(["early"])
    peer.write("late")
    await waitFor("the late bytes", () => taken.length === 2)
    expect(taken).toEqual(["early", "late"])
    reads.socket.destroy()
    peer.destroy()
  })
})
