import { createHash, randomBytes } from "node:crypto"
import { once } from "node:events"
import * as http from "node:http"
import { Writable } from "node:stream"
import { setImmediate as nextImmediate, setTimeout as sleep } from "node:timers/promises"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  DEFAULT_WINDOW,
  encodeHeader,
  Flag,
  FrameDecoder,
  type FrameHeader,
  FrameType,
  GoAwayCode,
  MAX_DECODE_PAYLOAD,
  MAX_STREAM_ID,
} from "../src/Tunnel/internal/Frame.js"
import { MemoryChannel } from "../src/Tunnel/internal/MemoryChannel.js"
import {
  type CloseReason,
  GrowthPool,
  Session,
  SessionClosedError,
  type SessionOptions,
  StreamResetError,
  type TunnelStream,
} from "../src/Tunnel/internal/Session.js"
import { collectGarbage } from "./support/gc.js"
import { waitFor } from "./support/http.js"
import { startWebSocketServer } from "./support/webSocketServer.js"

// ---------------------------------------------------------------------------------------------
// Harnesses

interface Pair {
  readonly client: Session
  readonly server: Session
}

const memoryPair = (client: Partial<SessionOptions> = {}, server: Partial<SessionOptions> = {}) => {
  const clientTransport = new MemoryChannel()
  const serverTransport = new MemoryChannel()
  const pair = {
    client: new Session(clientTransport, { ...client, role: "client" }),
    server: new Session(serverTransport, { ...server, role: "server" }),
    clientTransport,
    serverTransport,
  }
  clientTransport.peer = pair.server
  serverTransport.peer = pair.client
  return pair
}

/** A session under test whose peer is the test itself, speaking raw frames; `blocked` makes its writes back up. */
const rawPeer = (options: SessionOptions) => {
  const written: Array<Buffer> = []
  let transportClosed = false
  let drain = () => {}
  const transport = { blocked: false }
  const session = new Session(
    {
      write: (chunk) => {
        written.push(chunk)
        return !transport.blocked
      },
      onDrain: (listener) => {
        drain = listener
      },
      close: () => {
        transportClosed = true
      },
    },
    options,
  )
  const frames = (): Array<FrameHeader> => {
    const headers: Array<FrameHeader> = []
    new FrameDecoder({
      onFrame: (header) => headers.push(header),
      onData: (header, _piece, first) => first && headers.push(header),
      onError: (reason) => {
        throw new Error(`the session wrote an invalid frame: ${reason}`)
      },
    }).push(Buffer.concat(written))
    return headers
  }
  const send = (type: FrameType, flags: number, streamId: number, length: number, payload?: Buffer) =>
    session.receive(
      payload === undefined ? encodeHeader(type, flags, streamId, length) : frame(streamId, payload, flags),
    )
  const unblock = () => {
    transport.blocked = false
    drain()
  }
  const block = () => {
    transport.blocked = true
  }
  return {
    session,
    frames,
    send,
    bytes: () => Buffer.concat(written),
    block,
    unblock,
    isTransportClosed: () => transportClosed,
  }
}

const frame = (streamId: number, payload: Buffer, flags = 0): Buffer =>
  Buffer.concat([encodeHeader(FrameType.Data, flags, streamId, payload.length), payload])

const closeReason = (session: Session): Promise<CloseReason> =>
  new Promise((resolve) => session.onClose(resolve))

const readAll = async (stream: TunnelStream): Promise<Buffer> => {
  const chunks: Array<Buffer> = []
  stream.on("data", (chunk: Buffer) => chunks.push(chunk))
  await once(stream, "end")
  return Buffer.concat(chunks)
}

const closed = (stream: TunnelStream): Promise<void> =>
  new Promise((resolve) => (stream.closed ? resolve() : stream.once("close", () => resolve())))

/** For streams a test leaves open when it closes the session (which fails them with an error). */
const ignoreErrors = (stream: TunnelStream): TunnelStream => stream.on("error", () => {})

const echo = (stream: TunnelStream): void => {
  ignoreErrors(stream).pipe(stream)
}

const noStreamsLeft = async (...sessions: Array<Session>): Promise<void> => {
  while (sessions.some((session) => session.streamCount > 0)) await nextImmediate()
}

const random = randomBytes(1024 * 1024)

/** Writes `total` bytes in irregular chunks, honouring backpressure; returns their sha256. */
const sendBytes = async (stream: TunnelStream, total: number): Promise<string> => {
  const hash = createHash("sha256")
  for (let sent = 0, i = 0; sent < total; i++) {
    const size = Math.min(total - sent, 1 + ((i * 7919) % (96 * 1024)))
    const start = (i * 104_729) % (random.length - size)
    const chunk = random.subarray(start, start + size)
    hash.update(chunk)
    sent += size
    if (!stream.write(chunk)) await once(stream, "drain")
  }
  stream.end()
  return hash.digest("hex")
}

/** Records the largest readable buffer of `stream()` after each chunk the session receives. */
const watchBuffering = (session: Session, stream: () => TunnelStream | undefined) => {
  const watch = { max: 0 }
  const receive = session.receive.bind(session)
  session.receive = (chunk) => {
    receive(chunk)
    watch.max = Math.max(watch.max, stream()?.readableLength ?? 0)
  }
  return watch
}

// ---------------------------------------------------------------------------------------------
// Behaviour shared by both transports

const transports: Array<{
  readonly name: string
  readonly setup: () => Promise<{
    readonly pair: () => Promise<Pair>
    readonly teardown: () => Promise<void>
  }>
}> = [
  {
    name: "in-memory transport",
    setup: async () => ({ pair: async () => memoryPair(), teardown: async () => {} }),
  },
  {
    name: "WebSocket (Pico's agent client, zero masks; Pico's server endpoint)",
    setup: async () => {
      const server = await startWebSocketServer()
      return { pair: () => server.connect("zero"), teardown: server.stop }
    },
  },
  {
    name: "WebSocket (ws client with random masks)",
    setup: async () => {
      const server = await startWebSocketServer()
      return { pair: () => server.connect("random"), teardown: server.stop }
    },
  },
]

describe.each(transports)("Session over $name", ({ setup }) => {
  let pair: () => Promise<Pair>
  let teardown: () => Promise<void>
  beforeAll(async () => {
    ;({ pair, teardown } = await setup())
  })
  afterAll(() => teardown())

  it("opens and accepts a stream carrying data both ways", async () => {
    const { client, server } = await pair()
    server.onStream(echo)
    const stream = client.openStream()
    expect(stream.id).toBe(1)
    const reply = readAll(stream)
    stream.write("hello ")
    stream.end("world")
    expect((await reply).toString()).toBe("hello world")
    await noStreamsLeft(client, server)
    client.close()
  })

  it("the server opens even ids, the client odd ones, both at once", async () => {
    const { client, server } = await pair()
    client.onStream(echo)
    server.onStream(echo)
    const fromServer = [server.openStream(), server.openStream()]
    const fromClient = [client.openStream(), client.openStream()]
    expect(fromServer.map((stream) => stream.id)).toEqual([2, 4])
    expect(fromClient.map((stream) => stream.id)).toEqual([1, 3])
    const replies = [...fromServer, ...fromClient].map(async (stream) => {
      const reply = readAll(stream)
      stream.end(`stream ${stream.id}`)
      return (await reply).toString()
    })
    expect(await Promise.all(replies)).toEqual(["stream 2", "stream 4", "stream 1", "stream 3"])
    client.close()
  })

  it("runs 100 concurrent streams whose data interleaves and completes out of order", async () => {
    const { client, server } = await pair()
    server.onStream(async (stream) => {
      const request = await readAll(stream)
      // Answer later the earlier the stream was opened, so completion order differs from opening order.
      await sleep(((100 - request.readUInt32BE(0)) % 10) * 3)
      stream.end(Buffer.concat([Buffer.from("re:"), request]))
    })
    const completed: Array<number> = []
    const results = Array.from({ length: 100 }, async (_, index) => {
      const stream = client.openStream()
      const reply = readAll(stream)
      const parts = [Buffer.alloc(4), randomBytes(1 + index * 37), randomBytes(5000)]
      parts[0]?.writeUInt32BE(index)
      for (const part of parts) {
        stream.write(part)
        await nextImmediate()
      }
      stream.end()
      const request = Buffer.concat(parts)
      expect((await reply).equals(Buffer.concat([Buffer.from("re:"), request]))).toBe(true)
      completed.push(index)
    })
    await Promise.all(results)
    expect(completed).toHaveLength(100)
    expect(completed).not.toEqual([...completed].sort((a, b) => a - b))
    await noStreamsLeft(client, server)
    client.close()
  })

  it("moves 64 MiB to a consumer that pauses without buffering more than the largest window", async () => {
    const { client, server } = await pair()
    let received: TunnelStream | undefined
    const buffering = watchBuffering(server, () => received)
    const done = new Promise<string>((resolve, reject) => {
      server.onStream((stream) => {
        received = stream
        const hash = createHash("sha256")
        let chunks = 0
        stream.on("data", (chunk: Buffer) => {
          hash.update(chunk)
          if (++chunks % 100 !== 0) return
          stream.pause()
          setTimeout(() => stream.resume(), 5)
        })
        stream.on("end", () => {
          resolve(hash.digest("hex"))
          stream.end()
        })
        stream.on("error", reject)
      })
    })
    const sent = await sendBytes(ignoreErrors(client.openStream()), 64 * 1024 * 1024)
    expect(await done).toBe(sent)
    // Between pauses the consumer keeps up, so its window may have grown, to 1 MiB at most.
    expect(buffering.max).toBeLessThanOrEqual(4 * DEFAULT_WINDOW)
    // The pauses must actually have filled the window, or the bound above proves nothing.
    expect(buffering.max).toBeGreaterThan(DEFAULT_WINDOW / 2)
    client.close()
  })

  it("half-closes: each side ends its direction independently", async () => {
    const { client, server } = await pair()
    const serverSide = new Promise<TunnelStream>((resolve) => server.onStream(resolve))
    const stream = client.openStream()
    stream.end("request")
    const accepted = await serverSide
    expect((await readAll(accepted)).toString()).toBe("request")
    // The server's direction is still open after the client's FIN.
    expect(accepted.writable).toBe(true)
    const reply = readAll(stream)
    accepted.write("response ")
    await nextImmediate()
    accepted.end("done")
    expect((await reply).toString()).toBe("response done")
    await Promise.all([closed(stream), closed(accepted)])
    expect(stream.errored).toBeNull()
    expect(accepted.errored).toBeNull()
    await noStreamsLeft(client, server)
    client.close()
  })

  it("resets a stream in either direction", async () => {
    const { client, server } = await pair()
    const accepted: Array<TunnelStream> = []
    const arrived: Array<() => void> = []
    server.onStream((stream) => {
      accepted.push(stream)
      arrived.shift()?.()
    })
    const nextAccepted = async () => {
      if (accepted.length === 0) await new Promise<void>((resolve) => arrived.push(resolve))
      return accepted.shift() as TunnelStream
    }

    const first = client.openStream()
    first.write("x")
    const firstRemote = await nextAccepted()
    const firstError = once(firstRemote, "error")
    first.destroy()
    const [error] = await firstError
    expect(error).toBeInstanceOf(StreamResetError)
    expect(error.message).toBe("stream 1 was reset by the peer")

    const second = client.openStream()
    second.write("y")
    const secondRemote = await nextAccepted()
    const secondError = once(second, "error")
    secondRemote.destroy()
    expect((await secondError)[0]).toBeInstanceOf(StreamResetError)

    await noStreamsLeft(client, server)
    expect(client.closed || server.closed).toBe(false)
    client.close()
  })

  it("fails a write held for window and resets the stream when destroyed", async () => {
    const { client, server } = await pair()
    const remote = new Promise<TunnelStream>((resolve) =>
      server.onStream((stream) => {
        // Never read: the client runs out of window.
        stream.pause()
        resolve(stream)
      }),
    )
    const stream = client.openStream()
    const writeError = new Promise<Error | null | undefined>((resolve) =>
      stream.write(Buffer.alloc(DEFAULT_WINDOW + 1), resolve),
    )
    const accepted = await remote
    const reset = once(accepted, "error")
    while (accepted.readableLength < DEFAULT_WINDOW) await nextImmediate()
    stream.destroy()
    expect(await writeError).toMatchObject({ message: "stream 1 was destroyed before the write completed" })
    expect((await reset)[0]).toBeInstanceOf(StreamResetError)
    await noStreamsLeft(client, server)
    client.close()
  })

  it("measures ping round trips both ways", async () => {
    const { client, server } = await pair()
    const [fromClient, fromServer] = await Promise.all([client.ping(), server.ping()])
    expect(fromClient).toBeGreaterThanOrEqual(0)
    expect(fromServer).toBeGreaterThanOrEqual(0)
    expect(fromClient).toBeLessThan(5000)
    client.close()
  })

  it("after the server's GoAway the client opens no streams but still accepts them", async () => {
    const { client, server } = await pair()
    server.onStream(echo)
    client.onStream(echo)
    const goAway = new Promise<number>((resolve) => client.onGoAway(resolve))
    server.goAway()
    // Opened before the GoAway arrived: the server still accepts it.
    const racing = client.openStream()
    const racingReply = readAll(racing)
    racing.end("raced")
    expect(await goAway).toBe(GoAwayCode.Normal)
    expect((await racingReply).toString()).toBe("raced")
    expect(client.canOpenStream()).toBe(false)
    expect(() => client.openStream()).toThrow(SessionClosedError)
    // Having sent GoAway does not stop the server from opening streams; the client accepts them.
    expect(server.canOpenStream()).toBe(true)
    const stream = server.openStream()
    const reply = readAll(stream)
    stream.end("still here")
    expect((await reply).toString()).toBe("still here")
    expect(client.closed || server.closed).toBe(false)
    client.close()
  })

  it("carries a Node HTTP client request over a stream", async () => {
    const { client, server } = await pair()
    const agentStreams: Array<TunnelStream> = []
    const requestHead = new Promise<string>((resolve) => {
      client.onStream((stream) => {
        agentStreams.push(stream)
        let head = ""
        stream.on("data", (chunk: Buffer) => {
          head += chunk.toString("latin1")
          if (!head.includes("\r\n\r\n")) return
          resolve(head)
          stream.end("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        })
      })
    })
    const tunnelStreams: Array<TunnelStream> = []
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const request = http.request(
        {
          path: "/hello",
          headers: { host: "example.test" },
          createConnection: () => {
            const stream = server.openStream()
            tunnelStreams.push(stream)
            return stream
          },
        },
        resolve,
      )
      request.on("error", reject)
      request.end()
    })
    const body: Array<Buffer> = []
    response.on("data", (chunk: Buffer) => body.push(chunk))
    await once(response, "end")
    expect(response.statusCode).toBe(200)
    expect(Buffer.concat(body).toString()).toBe("ok")
    expect(await requestHead).toMatch(/^GET \/hello HTTP\/1\.1\r\n/)
    await noStreamsLeft(client, server)
    // Both directions ended with FIN: the HTTP client did not reset the stream.
    expect([...tunnelStreams, ...agentStreams].map((stream) => stream.errored)).toEqual([null, null])
    client.close()
  })

  it("closing one side destroys its streams and ends the other side as TransportClosed", async () => {
    const { client, server } = await pair()
    const serverStream = new Promise<TunnelStream>((resolve) => server.onStream(resolve))
    const stream = client.openStream()
    stream.write("x")
    const remote = await serverStream
    const remoteError = once(remote, "error")
    const localError = once(stream, "error")
    const serverClosed = closeReason(server)
    const clientClosed = closeReason(client)
    const pendingPing = client.ping()
    client.close("bye")
    await expect(pendingPing).rejects.toBeInstanceOf(SessionClosedError)
    expect(await clientClosed).toEqual({ _tag: "Local", message: "bye" })
    expect(await serverClosed).toEqual({ _tag: "TransportClosed" })
    expect((await localError)[0]).toBeInstanceOf(SessionClosedError)
    expect((await remoteError)[0]).toBeInstanceOf(SessionClosedError)
    expect(() => client.openStream()).toThrow(SessionClosedError)
    await expect(server.ping()).rejects.toBeInstanceOf(SessionClosedError)
    expect(client.streamCount + server.streamCount).toBe(0)
  })
})

// ---------------------------------------------------------------------------------------------
// In-memory specifics

describe("Session flow control", () => {
  /** Fixed windows (maxWindow = the initial window) bound buffering to 256 KiB; growing ones to 1 MiB. */
  const transfer = async (
    consume: (stream: TunnelStream) => Promise<string>,
    total: number,
    maxWindow = 4 * DEFAULT_WINDOW,
  ) => {
    const { client, server } = memoryPair({}, { maxWindow })
    let received: TunnelStream | undefined
    const buffering = watchBuffering(server, () => received)
    const done = new Promise<string>((resolve) =>
      server.onStream((stream) => {
        received = ignoreErrors(stream)
        resolve(consume(stream))
      }),
    )
    const sent = await sendBytes(ignoreErrors(client.openStream()), total)
    expect(await done).toBe(sent)
    expect(buffering.max).toBeLessThanOrEqual(maxWindow)
    client.close()
  }

  it("never stalls an async-iterating consumer", async () => {
    await transfer(
      async (stream) => {
        const hash = createHash("sha256")
        let chunks = 0
        for await (const chunk of stream) {
          hash.update(chunk)
          if (++chunks % 50 === 0) await sleep(2)
        }
        return hash.digest("hex")
      },
      16 * 1024 * 1024,
    )
  })

  it("never stalls a consumer reading large blocks in paused mode", async () => {
    await transfer(
      async (stream) => {
        const hash = createHash("sha256")
        stream.on("readable", () => {
          for (let chunk = stream.read(200_000); chunk !== null; chunk = stream.read(200_000))
            hash.update(chunk)
        })
        await once(stream, "end")
        // read(n) holds back a final partial block until the end.
        for (let chunk = stream.read(); chunk !== null; chunk = stream.read()) hash.update(chunk)
        return hash.digest("hex")
      },
      8 * 1024 * 1024,
    )
  })

  it("keeps transfers to consumers that pause at random points complete, within fixed or growing windows", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 8 }),
        fc.constantFrom(DEFAULT_WINDOW, 4 * DEFAULT_WINDOW),
        async (pauses, maxWindow) => {
          await transfer(
            async (stream) => {
              const hash = createHash("sha256")
              let chunks = 0
              stream.on("data", (chunk: Buffer) => {
                hash.update(chunk)
                chunks++
                if (!pauses.includes(chunks % 31)) return
                stream.pause()
                setTimeout(() => stream.resume(), 1)
              })
              await once(stream, "end")
              return hash.digest("hex")
            },
            1024 * 1024,
            maxWindow,
          )
        },
      ),
      { numRuns: 10 },
    )
  })

  it("holds write callbacks while the transport reports backpressure", async () => {
    const clientTransport = new MemoryChannel(16)
    const server = new Session(new MemoryChannel(), { role: "server" })
    const client = new Session(clientTransport, { role: "client" })
    clientTransport.peer = server
    server.onStream(echo)
    clientTransport.paused = true
    const stream = ignoreErrors(client.openStream())
    let firstDone = false
    let secondDone = false
    stream.write(Buffer.alloc(1000), () => {
      firstDone = true
    })
    await nextImmediate()
    await nextImmediate()
    expect(firstDone).toBe(true)
    // The first batch went out and the transport said "slow down": the next write waits for drain.
    stream.write(Buffer.alloc(1000), () => {
      secondDone = true
    })
    for (let i = 0; i < 10; i++) await nextImmediate()
    expect(secondDone).toBe(false)
    clientTransport.resume()
    while (!secondDone) await nextImmediate()
    client.close()
  })

  it("coalesces frames written in the same tick into one transport write", async () => {
    const { client, server, clientTransport } = memoryPair()
    const streams = Array.from({ length: 50 }, () => ignoreErrors(client.openStream()))
    for (const stream of streams) stream.write("small")
    await nextImmediate()
    expect(clientTransport.writes).toBe(1)
    client.close()
    server.close()
  })

  it("rejects an initial window below the yamux default, and other options out of range", () => {
    expect(() => new Session(new MemoryChannel(), { role: "client", initialWindow: 1024 })).toThrow(
      RangeError,
    )
    const make = (options: Partial<SessionOptions>) => () =>
      new Session(new MemoryChannel(), { role: "client", ...options })
    for (const initialWindow of [DEFAULT_WINDOW - 1, DEFAULT_WINDOW + 0.5, MAX_STREAM_ID + 1])
      expect(make({ initialWindow })).toThrow("initialWindow must be an integer from 262144 to 4294967295")
    for (const maxFramePayload of [0, 0.5, MAX_DECODE_PAYLOAD + 1])
      expect(make({ maxFramePayload })).toThrow("maxFramePayload must be an integer from 1 to 16777216")
    for (const acceptBacklog of [-1, 0.5])
      expect(make({ acceptBacklog })).toThrow("acceptBacklog must be a non-negative integer")
    for (const growthBudget of [-1, 0.5])
      expect(make({ growthBudget })).toThrow("growthBudget must be a non-negative integer")
    for (const size of [-1, 0.5])
      expect(() => new GrowthPool(size)).toThrow("a growth pool's size must be a non-negative integer")
    expect(new GrowthPool(0).size).toBe(0)
    for (const maxWindow of [DEFAULT_WINDOW - 1, DEFAULT_WINDOW + 0.5, MAX_STREAM_ID + 1])
      expect(make({ maxWindow })).toThrow(
        "maxWindow must be an integer from initialWindow (262144) to 4294967295",
      )
    expect(make({ initialWindow: 2 * DEFAULT_WINDOW, maxWindow: DEFAULT_WINDOW })).toThrow(
      "maxWindow must be an integer from initialWindow (524288)",
    )
    expect(
      make({ initialWindow: MAX_STREAM_ID, maxFramePayload: 1, acceptBacklog: 0, growthBudget: 0 }),
    ).not.toThrow()
    expect(make({ maxFramePayload: MAX_DECODE_PAYLOAD })).not.toThrow()
  })

  it("announces a larger window with the SYN and honours it", async () => {
    const window = 1024 * 1024
    const { client, server } = memoryPair({}, { initialWindow: window })
    let received: TunnelStream | undefined
    const buffering = watchBuffering(server, () => received)
    server.onStream((stream) => {
      received = ignoreErrors(stream)
      stream.pause()
    })
    const stream = ignoreErrors(client.openStream())
    stream.write(Buffer.alloc(2 * window))
    while (received === undefined || received.readableLength < window) await nextImmediate()
    for (let i = 0; i < 10; i++) await nextImmediate()
    expect(buffering.max).toBe(window)
    client.close()
  })
})

describe("Session stream admission", () => {
  it("refuses streams with RST when nobody accepts them", async () => {
    const { client } = memoryPair()
    const stream = client.openStream()
    const [error] = await once(stream, "error")
    expect(error).toBeInstanceOf(StreamResetError)
    expect(client.closed).toBe(false)
    client.close()
  })

  it("refuses streams beyond the accept backlog", async () => {
    const { client, server } = memoryPair({}, { acceptBacklog: 2 })
    server.onStream(ignoreErrors)
    const [a, b, c] = [client.openStream(), client.openStream(), client.openStream()].map(ignoreErrors)
    await closed(c as TunnelStream)
    expect(c?.errored).toBeInstanceOf(StreamResetError)
    expect(server.streamCount).toBe(2)
    expect(a?.destroyed || b?.destroyed).toBe(false)
    client.close()
  })
})

describe("Session streams held until served (holdUnserved)", () => {
  it("hands streams opened before onStream to the handler, in order, with the data sent meanwhile", async () => {
    const { client, server } = memoryPair({ holdUnserved: true })
    for (const text of ["first", "second"]) ignoreErrors(server.openStream()).end(text)
    await waitFor("both streams held", () => client.streamCount === 2)
    // Still no handler: they stay held.
    client.onStream(undefined)
    const served: Array<Promise<Buffer>> = []
    client.onStream((stream) => served.push(readAll(ignoreErrors(stream))))
    expect((await Promise.all(served)).map(String)).toEqual(["first", "second"])
    client.close()
  })

  it("drops a held stream the peer resets, and one the session closes, without an unhandled error", async () => {
    const { client, server } = memoryPair({ holdUnserved: true })
    const reset = ignoreErrors(server.openStream())
    await waitFor("the stream held", () => client.streamCount === 1)
    reset.destroy()
    await waitFor("the reset stream dropped", () => client.streamCount === 0)
    const handed: Array<TunnelStream> = []
    client.onStream((stream) => handed.push(stream))
    expect(handed).toEqual([])

    client.onStream(undefined)
    ignoreErrors(server.openStream())
    await waitFor("the stream held", () => client.streamCount === 1)
    client.close()
    client.onStream((stream) => handed.push(stream))
    expect(handed).toEqual([])
  })

  it("holds no more streams than the accept backlog", async () => {
    const { client, server } = memoryPair({ holdUnserved: true, acceptBacklog: 1 })
    const [held, refused] = [server.openStream(), server.openStream()].map(ignoreErrors)
    await closed(refused as TunnelStream)
    expect(refused?.errored).toBeInstanceOf(StreamResetError)
    expect(held?.destroyed).toBe(false)
    client.close()
  })
})

describe("Session protocol errors", () => {
  const expectProtocolError = async (
    options: SessionOptions,
    act: (peer: ReturnType<typeof rawPeer>) => void,
    message: RegExp,
  ) => {
    const peer = rawPeer(options)
    peer.session.onStream(ignoreErrors)
    const reason = closeReason(peer.session)
    act(peer)
    const closedWith = await reason
    expect(closedWith._tag).toBe("ProtocolError")
    expect(closedWith._tag === "ProtocolError" && closedWith.message).toMatch(message)
    expect(peer.frames().at(-1)).toEqual({
      type: FrameType.GoAway,
      flags: 0,
      streamId: 0,
      length: GoAwayCode.ProtocolError,
    })
    expect(peer.isTransportClosed()).toBe(true)
    return peer
  }

  it("on a bad version", async () => {
    const bytes = encodeHeader(FrameType.Ping, Flag.SYN, 0, 1)
    bytes[0] = 1
    await expectProtocolError({ role: "server" }, (peer) => peer.session.receive(bytes), /version 1/)
  })

  it("on an unknown frame type, ignoring the frames after it", async () => {
    const bytes = encodeHeader(FrameType.Ping, Flag.SYN, 0, 1)
    bytes[1] = 9
    const peer = await expectProtocolError(
      { role: "server" },
      (peer) => peer.session.receive(Buffer.concat([bytes, encodeHeader(FrameType.Ping, Flag.SYN, 0, 2)])),
      /unknown frame type 9/,
    )
    expect(peer.frames().filter((header) => header.type === FrameType.Ping)).toEqual([])
  })

  it("on data beyond the receive window", async () => {
    await expectProtocolError(
      { role: "server" },
      (peer) => {
        peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0)
        peer.send(FrameType.Data, 0, 1, 0, Buffer.alloc(DEFAULT_WINDOW))
        peer.send(FrameType.Data, 0, 1, 0, Buffer.alloc(1))
      },
      /stream 1 received 1 bytes with only 0 left in its window/,
    )
  })

  it("on a Data frame beyond the receive window, before taking any of its payload", async () => {
    let received = 0
    await expectProtocolError(
      { role: "server" },
      (peer) => {
        peer.session.onStream((stream) =>
          ignoreErrors(stream).on("data", (chunk: Buffer) => (received += chunk.length)),
        )
        peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0)
        peer.session.receive(
          Buffer.concat([encodeHeader(FrameType.Data, 0, 1, DEFAULT_WINDOW + 1), Buffer.alloc(1)]),
        )
      },
      /stream 1 received 262145 bytes with only 262144 left in its window/,
    )
    expect(received).toBe(0)
  })

  it("on a SYN with the wrong parity", async () => {
    await expectProtocolError(
      { role: "server" },
      (peer) => peer.send(FrameType.WindowUpdate, Flag.SYN, 2, 0),
      /the client must open odd stream ids/,
    )
    await expectProtocolError(
      { role: "client" },
      (peer) => peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0),
      /the server must open even stream ids/,
    )
  })

  it("on a SYN reusing an open stream id", async () => {
    await expectProtocolError(
      { role: "server" },
      (peer) => {
        peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0)
        peer.send(FrameType.Data, Flag.SYN, 1, 0, Buffer.from("x"))
      },
      /SYN for stream 1, which is already open/,
    )
  })

  it("on a frame for a stream that was never opened", async () => {
    await expectProtocolError(
      { role: "server" },
      (peer) => peer.send(FrameType.Data, 0, 5, 0, Buffer.from("x")),
      /Data frame for stream 5, which was never opened/,
    )
    // Below the next id the server would open itself, and the next id of its own.
    for (const streamId of [1, 4])
      await expectProtocolError(
        { role: "server" },
        (peer) => {
          ignoreErrors(peer.session.openStream())
          peer.send(FrameType.WindowUpdate, 0, streamId, 1)
        },
        new RegExp(`WindowUpdate frame for stream ${streamId}, which was never opened`),
      )
  })

  it("on a Data or WindowUpdate frame on stream 0", async () => {
    await expectProtocolError(
      { role: "server" },
      (peer) => peer.send(FrameType.WindowUpdate, 0, 0, 1),
      /WindowUpdate frame on stream 0/,
    )
  })

  it("on a SYN whose id does not increase, even one of a stream closed since", async () => {
    await expectProtocolError(
      { role: "server" },
      (peer) => {
        peer.send(FrameType.WindowUpdate, Flag.SYN, 3, 0)
        peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0)
      },
      /SYN for stream 1: stream ids must increase \(last was 3\)/,
    )
    await expectProtocolError(
      { role: "server" },
      (peer) => {
        peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0)
        peer.send(FrameType.WindowUpdate, Flag.RST, 1, 0)
        peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0)
      },
      /SYN for stream 1: stream ids must increase \(last was 1\)/,
    )
  })

  it("on data after FIN", async () => {
    await expectProtocolError(
      { role: "server" },
      (peer) => {
        peer.send(FrameType.WindowUpdate, Flag.SYN | Flag.FIN, 1, 0)
        peer.send(FrameType.Data, 0, 1, 0, Buffer.from("x"))
      },
      /Data on stream 1 after its FIN/,
    )
  })

  it("but not on frames that race a reset", async () => {
    const peer = rawPeer({ role: "server" })
    peer.session.onStream((stream) => stream.destroy())
    peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0)
    peer.send(FrameType.Data, 0, 1, 0, Buffer.from("late"))
    peer.send(FrameType.WindowUpdate, 0, 1, 100)
    await nextImmediate()
    expect(peer.session.closed).toBe(false)
    expect(peer.frames()).toEqual([
      { type: FrameType.WindowUpdate, flags: Flag.ACK, streamId: 1, length: 0 },
      { type: FrameType.WindowUpdate, flags: Flag.RST, streamId: 1, length: 0 },
    ])
  })

  it("accepts streams the peer opens after we sent GoAway", async () => {
    const peer = rawPeer({ role: "server" })
    const accepted: Array<number> = []
    peer.session.onStream((stream) => accepted.push(stream.id))
    peer.session.goAway()
    peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0)
    await nextImmediate()
    expect(accepted).toEqual([1])
    expect(peer.frames()).toEqual([
      { type: FrameType.GoAway, flags: 0, streamId: 0, length: GoAwayCode.Normal },
      { type: FrameType.WindowUpdate, flags: Flag.ACK, streamId: 1, length: 0 },
    ])
  })

  it("answers pings with the same opaque value", async () => {
    const peer = rawPeer({ role: "client" })
    peer.send(FrameType.Ping, Flag.SYN, 0, 0xdead_beef)
    await nextImmediate()
    expect(peer.frames()).toEqual([
      { type: FrameType.Ping, flags: Flag.ACK, streamId: 0, length: 0xdead_beef },
    ])
  })
})

describe("Session Data frames arriving in pieces", () => {
  it("passes each piece on as it comes, with SYN on the first and FIN after the last", async () => {
    const peer = rawPeer({ role: "server" })
    const chunks: Array<string> = []
    let ended = false
    const accepted = new Promise<TunnelStream>((resolve) => peer.session.onStream(resolve))
    const bytes = frame(1, Buffer.from("hello world"), Flag.SYN | Flag.FIN)
    peer.session.receive(bytes.subarray(0, 14))
    const stream = await accepted
    stream.on("data", (chunk: Buffer) => chunks.push(chunk.toString()))
    stream.on("end", () => {
      ended = true
    })
    await nextImmediate()
    expect(chunks).toEqual(["he"])
    peer.session.receive(bytes.subarray(14, 20))
    await nextImmediate()
    expect(chunks).toEqual(["he", "llo wo"])
    expect(ended).toBe(false)
    peer.session.receive(bytes.subarray(20))
    await once(stream, "end")
    expect(chunks).toEqual(["he", "llo wo", "rld"])
    expect(peer.frames()[0]).toEqual({
      type: FrameType.WindowUpdate,
      flags: Flag.ACK,
      streamId: 1,
      length: 0,
    })
  })

  it("drops the rest of a frame for a stream destroyed half way, without a protocol error", async () => {
    const peer = rawPeer({ role: "server" })
    peer.session.onStream((stream) => stream.once("data", () => stream.destroy()))
    const bytes = Buffer.concat([
      frame(1, Buffer.alloc(1000), Flag.SYN),
      encodeHeader(FrameType.Ping, Flag.SYN, 0, 7),
    ])
    for (let offset = 0; offset < bytes.length; offset += 100) {
      peer.session.receive(bytes.subarray(offset, offset + 100))
      await nextImmediate()
    }
    expect(peer.session.closed).toBe(false)
    expect(peer.frames()).toEqual([
      { type: FrameType.WindowUpdate, flags: Flag.ACK, streamId: 1, length: 0 },
      { type: FrameType.WindowUpdate, flags: Flag.RST, streamId: 1, length: 0 },
      { type: FrameType.Ping, flags: Flag.ACK, streamId: 0, length: 7 },
    ])
  })

  it("credits the window per byte consumed, including within a frame still arriving", async () => {
    const peer = rawPeer({ role: "server" })
    peer.session.onStream((stream) => stream.resume())
    // A full window in one frame, consumed as it arrives: credit goes back before the frame is complete.
    const bytes = frame(1, Buffer.alloc(DEFAULT_WINDOW), Flag.SYN)
    peer.session.receive(bytes.subarray(0, 12 + DEFAULT_WINDOW / 2))
    await nextImmediate()
    await nextImmediate()
    expect(peer.frames().at(-1)).toEqual({
      type: FrameType.WindowUpdate,
      flags: 0,
      streamId: 1,
      length: DEFAULT_WINDOW / 2,
    })
    peer.session.receive(bytes.subarray(12 + DEFAULT_WINDOW / 2))
    // The window is whole again: half was charged back already, half is in this next frame.
    peer.send(FrameType.Data, 0, 1, 0, Buffer.alloc(DEFAULT_WINDOW / 2))
    await nextImmediate()
    expect(peer.session.closed).toBe(false)
  })
})

describe("Session reads lent by the transport", () => {
  /** A lent read: the bytes as given, in a buffer the test then overwrites as the transport's next read would. */
  const lend = (peer: ReturnType<typeof rawPeer>, ...frames: Array<Buffer>) => {
    const read = Buffer.concat(frames)
    peer.session.receive(read, true)
    const held = peer.session.lentBytesHeld()
    if (!held) read.fill(0x78)
    return held
  }
  const large = (letter: string) => Buffer.alloc(16 * 1024, letter)

  it("copies what a stream cannot take in place, so the read's buffer is free at once and nothing is lost", async () => {
    const peer = rawPeer({ role: "server" })
    const streams: Array<TunnelStream> = []
    peer.session.onStream((stream) => streams.push(stream))
    // No consumer that takes pieces in place yet: copied.
    expect(lend(peer, frame(1, large("a"), Flag.SYN))).toBe(false)
    const [stream] = streams
    if (stream === undefined) throw new Error("a stream expected")
    let holding = false
    stream.consumeInPlace(() => holding)
    const received: Array<Buffer> = []
    stream.on("data", (piece: Buffer) => received.push(piece))
    await nextImmediate()
    // A small piece, a piece while the consumer still holds an earlier one, and one while it is paused: copied.
    expect(lend(peer, frame(1, Buffer.from("b")))).toBe(false)
    holding = true
    expect(lend(peer, frame(1, large("c")))).toBe(false)
    holding = false
    stream.pause()
    expect(lend(peer, frame(1, large("d")))).toBe(false)
    stream.resume()
    await nextImmediate()
    expect(Buffer.concat(received).toString()).toBe(
      `${large("a").toString()}b${large("c").toString()}${large("d").toString()}`,
    )
    // A reader that has not said it takes pieces in place gets copies, reading or not.
    peer.session.receive(frame(3, Buffer.from("3"), Flag.SYN))
    const reader = streams[1]
    if (reader === undefined) throw new Error("a second stream expected")
    const read: Array<Buffer> = []
    reader.on("data", (piece: Buffer) => read.push(piece))
    await nextImmediate()
    expect(lend(peer, frame(3, large("e")))).toBe(false)
    expect(Buffer.concat(read).toString()).toBe(`3${large("e").toString()}`)
  })

  it("copies a piece for a stream just set reading with data still buffered", async () => {
    const peer = rawPeer({ role: "server" })
    const streams: Array<TunnelStream> = []
    peer.session.onStream((stream) => streams.push(stream))
    peer.session.receive(frame(1, Buffer.from("early"), Flag.SYN))
    const [stream] = streams
    if (stream === undefined) throw new Error("a stream expected")
    stream.consumeInPlace(() => false)
    const received: Array<Buffer> = []
    // Flowing from now on, but what is buffered comes out only on the next tick.
    stream.on("data", (piece: Buffer) => received.push(piece))
    expect(stream.readableFlowing).toBe(true)
    expect(lend(peer, frame(1, large("f")))).toBe(false)
    await nextImmediate()
    expect(Buffer.concat(received).toString()).toBe(`early${large("f").toString()}`)
  })

  it("takes a large piece in place when its consumer can, and says the read is held while the consumer keeps it", async () => {
    const peer = rawPeer({ role: "server" })
    const streams: Array<TunnelStream> = []
    peer.session.onStream((stream) => streams.push(stream))
    peer.session.receive(frame(1, Buffer.from("1"), Flag.SYN))
    peer.session.receive(frame(3, Buffer.from("3"), Flag.SYN))
    const [first, second] = streams
    if (first === undefined || second === undefined) throw new Error("two streams expected")
    // The second stream's consumer keeps what it is given while `keeping` is set, as a socket that cannot send.
    let keeping = false
    let kept = false
    const views: Array<Buffer> = []
    first.consumeInPlace(() => false)
    first.on("data", () => {})
    second.consumeInPlace(() => kept)
    second.on("data", (piece: Buffer) => {
      views.push(piece)
      kept = keeping
    })
    await nextImmediate()
    // Taken in place and let go of at once: the read is free.
    const read = Buffer.concat([frame(3, large("e")), frame(1, large("f"))])
    peer.session.receive(read, true)
    expect(views.at(-1)?.buffer).toBe(read.buffer)
    expect(peer.session.lentBytesHeld()).toBe(false)
    // One read for both streams, the second keeping its piece: held, and asked again, nothing since.
    keeping = true
    expect(lend(peer, frame(1, large("g")), frame(3, large("h")))).toBe(true)
    expect(peer.session.lentBytesHeld()).toBe(false)
    expect(views.at(-1)?.toString()).toBe(large("h").toString())
    // While it keeps that one, the next is copied.
    expect(lend(peer, frame(3, large("i")))).toBe(false)
    expect(views.at(-1)?.toString()).toBe(large("i").toString())
    // A stream set reading this very tick has never been read: Node buffers the first push instead of handing
    // it over, and the piece it took in place is held.
    peer.session.receive(frame(5, Buffer.alloc(0), Flag.SYN))
    const third = streams[2]
    if (third === undefined) throw new Error("a third stream expected")
    third.consumeInPlace(() => false)
    third.on("data", () => {})
    expect(lend(peer, frame(5, large("j")))).toBe(true)
    expect(third.readableLength).toBe(16 * 1024)
  })

  it("takes pieces in place only while piped to the socket that can, and copies for whoever reads after", async () => {
    const peer = rawPeer({ role: "server" })
    const streams: Array<TunnelStream> = []
    peer.session.onStream((stream) => streams.push(stream))
    peer.session.receive(frame(1, Buffer.alloc(0), Flag.SYN))
    const [stream] = streams
    if (stream === undefined) throw new Error("a stream expected")
    // A socket that sends what it is given at once, keeping nothing in its queue, until it is told to stall.
    const sent: Array<Buffer> = []
    let stalled: (() => void) | undefined
    let stall = false
    const socket = new Writable({
      write: (piece: Buffer, _encoding, done) => {
        sent.push(piece)
        if (stall) stalled = done
        else done()
      },
    })
    stream.pipeInPlace(socket)
    await nextImmediate()
    const read = frame(1, large("k"))
    peer.session.receive(read, true)
    // The socket had the piece itself, not a copy, and let go of it.
    expect(sent.at(-1)?.buffer).toBe(read.buffer)
    expect(sent.at(-1)?.toString()).toBe(large("k").toString())
    expect(peer.session.lentBytesHeld()).toBe(false)
    // One it keeps queued holds the read: the transport's next read goes elsewhere and the piece stays whole.
    stall = true
    expect(lend(peer, frame(1, large("m")))).toBe(true)
    expect(sent.at(-1)?.toString()).toBe(large("m").toString())
    stall = false
    stalled?.()
    await nextImmediate()
    // Unpiped, then read by a listener that never said it takes pieces in place: it gets a copy, which the
    // transport's next read (lend() overwrites the buffer) cannot touch.
    stream.unpipe(socket)
    const readAfter: Array<Buffer> = []
    stream.on("data", (piece: Buffer) => readAfter.push(piece))
    stream.resume()
    expect(stream.readableFlowing).toBe(true)
    expect(lend(peer, frame(1, large("l")))).toBe(false)
    await nextImmediate()
    expect(Buffer.concat(readAfter).toString()).toBe(large("l").toString())
  })
})

describe("Session stream lifecycle, frame by frame", () => {
  type Peer = ReturnType<typeof rawPeer>
  const windowUpdate = (streamId: number, flags: number, length = 0) => ({
    type: FrameType.WindowUpdate,
    flags,
    streamId,
    length,
  })
  const dataLengths = (peer: Peer) =>
    peer
      .frames()
      .filter((header) => header.type === FrameType.Data)
      .map((header) => header.length)

  it("announces a larger receive window with its SYN, and sends a frame larger than a batch whole", async () => {
    const peer = rawPeer({
      role: "client",
      initialWindow: 4 * DEFAULT_WINDOW,
      maxFramePayload: 2 * DEFAULT_WINDOW,
    })
    const stream = peer.session.openStream()
    peer.send(FrameType.WindowUpdate, Flag.ACK, stream.id, DEFAULT_WINDOW)
    const payload = randomBytes(2 * DEFAULT_WINDOW)
    stream.write(payload)
    await nextImmediate()
    expect(peer.frames()).toEqual([
      windowUpdate(1, Flag.SYN, 3 * DEFAULT_WINDOW),
      { type: FrameType.Data, flags: 0, streamId: 1, length: 2 * DEFAULT_WINDOW },
    ])
    expect(peer.bytes().subarray(24)).toEqual(payload)
  })

  describe("the receive window", () => {
    const KiB = 1024
    /** A session on a clock the test moves: `elapse` milliseconds pass. */
    const clockedPeer = (options: Partial<SessionOptions> = {}) => {
      let now = 1_000
      const peer = rawPeer({ role: "client", ...options, clock: () => now })
      return { peer, elapse: (ms: number) => (now += ms) }
    }
    /**
     * Opens a stream (2 unless told) from the peer and sends `total` bytes in 64 KiB frames, never beyond the
     * window granted, with `between` after each frame; returns the window credits the session sent.
     */
    const feed = async (peer: Peer, total: number, between: () => void, streamId = 2) => {
      const credits = () =>
        peer
          .frames()
          .filter((header) => header.type === FrameType.WindowUpdate && header.streamId === streamId)
          .map((header) => header.length)
      peer.send(FrameType.WindowUpdate, Flag.SYN, streamId, 0)
      let sent = 0
      while (sent < total) {
        const granted = credits().reduce((sum, delta) => sum + delta, DEFAULT_WINDOW)
        if (granted - sent < 64 * KiB) throw new Error(`out of window after ${sent} bytes`)
        peer.send(FrameType.Data, 0, streamId, 64 * KiB, Buffer.alloc(64 * KiB))
        sent += 64 * KiB
        await nextImmediate()
        between()
      }
      // The first update is the ACK of the SYN.
      return credits().slice(1)
    }
    const readAllAtOnce = (peer: Peer) => peer.session.onStream((stream) => stream.on("data", () => {}))

    it("doubles for a consumer that keeps up, to maxWindow and no further", async () => {
      const { peer, elapse } = clockedPeer({ maxWindow: 4 * DEFAULT_WINDOW })
      readAllAtOnce(peer)
      // Half a window every 2 ms at most: fast.
      const credits = await feed(peer, 4 * 1024 * KiB, () => elapse(1))
      // Half of 256 KiB credited (nothing to compare its pace with), then half of 256 KiB plus 256 KiB more,
      // half of 512 KiB plus 512 KiB more, then half of 1 MiB at a time.
      expect(credits.slice(0, 5)).toEqual([128 * KiB, 384 * KiB, 768 * KiB, 512 * KiB, 512 * KiB])
      expect(new Set(credits.slice(3))).toEqual(new Set([512 * KiB]))
    })

    it("grows only as far as a maxWindow that is not a doubling of the initial window", async () => {
      const { peer, elapse } = clockedPeer({ maxWindow: 3 * DEFAULT_WINDOW })
      readAllAtOnce(peer)
      const credits = await feed(peer, 4 * 1024 * KiB, () => elapse(1))
      // To 512 KiB, then by 256 KiB (not 512) to 768 KiB, then half of 768 KiB at a time.
      expect(credits.slice(0, 3)).toEqual([128 * KiB, 384 * KiB, 512 * KiB])
      expect(new Set(credits.slice(3))).toEqual(new Set([384 * KiB]))
    })

    it("stays for a consumer that leaves data unread", async () => {
      const { peer, elapse } = clockedPeer()
      const streams: Array<TunnelStream> = []
      peer.session.onStream((stream) => streams.push(stream))
      // The consumer reads as fast as data comes, but always a frame behind: 64 KiB wait unread.
      const credits = await feed(peer, 4 * 1024 * KiB, () => {
        elapse(1)
        const stream = streams[0]
        if (stream !== undefined && stream.readableLength >= 128 * KiB) stream.read(64 * KiB)
      })
      expect(credits.length).toBeGreaterThan(2)
      expect(new Set(credits)).toEqual(new Set([128 * KiB]))
    })

    it("stays for a consumer that reads everything, but slower than half a window per 20 ms", async () => {
      // Two 64 KiB frames per half window: 20 ms exactly is not within 20 ms.
      for (const msPerFrame of [10.5, 10]) {
        const { peer, elapse } = clockedPeer()
        readAllAtOnce(peer)
        const credits = await feed(peer, 1024 * KiB, () => elapse(msPerFrame))
        expect(credits.length).toBeGreaterThan(2)
        expect(new Set(credits)).toEqual(new Set([128 * KiB]))
      }
    })

    it("judges the pace against four of the shortest ping round trips, up to 250 ms", async () => {
      /** The credits for 1 MiB at `msPerFrame`, on a session whose pings took `roundTrips` ms. */
      const creditsAfterPings = async (roundTrips: ReadonlyArray<number>, msPerFrame: number) => {
        const { peer, elapse } = clockedPeer()
        readAllAtOnce(peer)
        for (const [id, ms] of roundTrips.entries()) {
          const answered = peer.session.ping()
          elapse(ms)
          peer.send(FrameType.Ping, Flag.ACK, 0, id)
          expect(await answered).toBe(ms)
        }
        return feed(peer, 1024 * KiB, () => elapse(msPerFrame))
      }
      // Round trips of 15 ms, then 100 ms (a ping that waited behind data): the 15 ms one counts, so 60 ms.
      // Half a window per 29 ms is fast against that (not against 20 ms alone)...
      expect((await creditsAfterPings([15, 100], 14.5)).slice(0, 2)).toEqual([128 * KiB, 384 * KiB])
      // ...and half a window per 100 ms is slow (not against 400 ms).
      expect(new Set(await creditsAfterPings([15, 100], 50))).toEqual(new Set([128 * KiB]))
      // A path of 100 ms round trips gives 250 ms, not 400: half a window per 300 ms is slow.
      expect(new Set(await creditsAfterPings([100], 150))).toEqual(new Set([128 * KiB]))
      // The shortest counts whenever it comes: after 100 ms then 15 ms, half a window per 100 ms is slow (60 ms).
      expect(new Set(await creditsAfterPings([100, 15], 50))).toEqual(new Set([128 * KiB]))
    })

    it("shares the session's growthBudget among open streams, and gets a finished stream's share back", async () => {
      const { peer, elapse } = clockedPeer({ growthBudget: DEFAULT_WINDOW })
      // Each stream is read at once and finished when the peer finishes it.
      peer.session.onStream((stream) => stream.on("data", () => {}).on("end", () => stream.end()))
      const fast = () => elapse(1)
      // Stream 2 takes the whole budget with its first growth (to 512 KiB) and then stays at 512 KiB...
      const first = await feed(peer, 2 * 1024 * KiB, fast, 2)
      expect(first.slice(0, 2)).toEqual([128 * KiB, 384 * KiB])
      expect(new Set(first.slice(2))).toEqual(new Set([256 * KiB]))
      // ...so stream 4, as fast, cannot grow while stream 2 is open.
      expect(new Set(await feed(peer, 2 * 1024 * KiB, fast, 4))).toEqual(new Set([128 * KiB]))
      peer.send(FrameType.WindowUpdate, Flag.FIN, 2, 0)
      const finished = () =>
        peer.frames().some((header) => header.streamId === 2 && header.flags === Flag.FIN)
      while (!finished()) await nextImmediate()
      expect(peer.session.streamCount).toBe(1)
      expect((await feed(peer, 2 * 1024 * KiB, fast, 6)).slice(0, 2)).toEqual([128 * KiB, 384 * KiB])
    })

    it("counts a finished stream's growth until its reader has taken what is buffered, or it is reset", async () => {
      const { peer, elapse } = clockedPeer({ growthBudget: DEFAULT_WINDOW })
      const streams = new Map<number, TunnelStream>()
      peer.session.onStream((stream) => {
        streams.set(stream.id, ignoreErrors(stream))
        stream.on("data", () => {})
      })
      const fast = () => elapse(1)
      const grew = (credits: ReadonlyArray<number>) => credits.some((credit) => credit > 128 * KiB)
      expect(grew(await feed(peer, 2 * 1024 * KiB, fast, 2))).toBe(true)
      // Stream 2's reader stops; the rest of its data and its FIN arrive, and it is finished both ways.
      const paused = streams.get(2) as TunnelStream
      paused.pause()
      peer.send(FrameType.Data, Flag.FIN, 2, 64 * KiB, Buffer.alloc(64 * KiB))
      await nextImmediate()
      paused.end()
      while (peer.session.streamCount > 0) await nextImmediate()
      expect(paused.readableLength).toBe(64 * KiB)
      // The 64 KiB still buffered came in through the growth: it is still counted.
      expect(grew(await feed(peer, 2 * 1024 * KiB, fast, 4))).toBe(false)
      paused.resume()
      await new Promise((resolve) => paused.once("end", resolve))
      expect(grew(await feed(peer, 2 * 1024 * KiB, fast, 6))).toBe(true)
      // Stream 6 holds the budget until the peer resets it.
      expect(grew(await feed(peer, 2 * 1024 * KiB, fast, 8))).toBe(false)
      peer.send(FrameType.WindowUpdate, Flag.RST, 6, 0)
      await nextImmediate()
      expect(grew(await feed(peer, 2 * 1024 * KiB, fast, 10))).toBe(true)
      // Stream 10 is destroyed here with data buffered: what it held is dropped, and its growth given back.
      const destroyed = streams.get(10) as TunnelStream
      destroyed.pause()
      peer.send(FrameType.Data, 0, 10, 64 * KiB, Buffer.alloc(64 * KiB))
      await nextImmediate()
      expect(destroyed.readableLength).toBe(64 * KiB)
      destroyed.destroy()
      expect(grew(await feed(peer, 2 * 1024 * KiB, fast, 12))).toBe(true)
    })

    it("takes growth from a pool shared with other sessions, and gets a stream's share back as it is destroyed", async () => {
      const growthPool = new GrowthPool(DEFAULT_WINDOW)
      const [a, b] = [clockedPeer({ growthPool }), clockedPeer({ growthPool })]
      const streams = new Map<string, TunnelStream>()
      // Streams are read at once; closing a session fails its open ones (the errors are expected).
      for (const [name, { peer }] of [
        ["a", a],
        ["b", b],
      ] as const)
        peer.session.onStream((stream) => {
          streams.set(`${name}${stream.id}`, ignoreErrors(stream))
          stream.on("data", () => {})
        })
      const grew = (credits: ReadonlyArray<number>) => credits.some((credit) => credit > 128 * KiB)
      // Session a's stream takes the whole pool with its first growth, though its own budget is 16 MiB...
      expect(grew(await feed(a.peer, 2 * 1024 * KiB, () => a.elapse(1)))).toBe(true)
      expect(growthPool.used).toBe(DEFAULT_WINDOW)
      // ...so session b's streams, as fast, cannot grow while it is open...
      expect(grew(await feed(b.peer, 2 * 1024 * KiB, () => b.elapse(1), 2))).toBe(false)
      // ...and can once it has finished both ways and its reader has taken everything, with session a still open.
      const a2 = streams.get("a2") as TunnelStream
      a.peer.send(FrameType.WindowUpdate, Flag.FIN, 2, 0)
      a2.end()
      await once(a2, "close")
      expect(growthPool.used).toBe(0)
      expect(grew(await feed(b.peer, 2 * 1024 * KiB, () => b.elapse(1), 4))).toBe(true)
      expect(growthPool.used).toBe(DEFAULT_WINDOW)
      // b's stream 4 finishes both ways with data its reader has not taken: closing session b destroys its open
      // streams, not this one, whose data (some of it let in by the growth) is still here: its share stays taken.
      const b4 = streams.get("b4") as TunnelStream
      b4.pause()
      b.peer.send(FrameType.Data, Flag.FIN, 4, 64 * KiB, Buffer.alloc(64 * KiB))
      await nextImmediate()
      b4.end()
      await nextImmediate()
      b.peer.session.close()
      expect(b4.readableLength).toBe(64 * KiB)
      expect(growthPool.used).toBe(DEFAULT_WINDOW)
      b4.resume()
      await once(b4, "close")
      expect(growthPool.used).toBe(0)
    })

    it("gets back the share of a finished stream that its reader dropped without destroying it", async () => {
      const growthPool = new GrowthPool(DEFAULT_WINDOW)
      const { peer, elapse } = clockedPeer({ growthPool })
      // The reader keeps nothing but a weak reference: once the stream is finished, nothing else holds it.
      let dropped: WeakRef<TunnelStream> | undefined
      peer.session.onStream((stream) => {
        dropped = new WeakRef(stream)
        stream.on("data", () => {})
      })
      await feed(peer, 2 * 1024 * KiB, () => elapse(1))
      expect(growthPool.used).toBe(DEFAULT_WINDOW)
      // Finished both ways with data unread, in a function of its own: no strong reference outlives it.
      const finishUnread = async () => {
        const stream = dropped?.deref()
        if (stream === undefined) throw new Error("the stream was collected early")
        stream.pause()
        peer.send(FrameType.Data, Flag.FIN, 2, 64 * KiB, Buffer.alloc(64 * KiB))
        stream.end()
        await nextImmediate()
        expect(stream.destroyed).toBe(false)
        expect(stream.readableLength).toBe(64 * KiB)
      }
      await finishUnread()
      expect(peer.session.streamCount).toBe(0)
      expect(growthPool.used).toBe(DEFAULT_WINDOW)
      await waitFor("the dropped stream's share to come back", async () => {
        collectGarbage()
        await nextImmediate()
        return growthPool.used === 0
      })
      expect(dropped?.deref()).toBeUndefined()
    })

    it("with a growthBudget of 0, never grows", async () => {
      const { peer, elapse } = clockedPeer({ growthBudget: 0 })
      readAllAtOnce(peer)
      expect(new Set(await feed(peer, 2 * 1024 * KiB, () => elapse(1)))).toEqual(new Set([128 * KiB]))
    })

    it("with maxWindow equal to the initial window, never grows", async () => {
      const { peer, elapse } = clockedPeer({ maxWindow: DEFAULT_WINDOW })
      readAllAtOnce(peer)
      expect(new Set(await feed(peer, 2 * 1024 * KiB, () => elapse(1)))).toEqual(new Set([128 * KiB]))
    })
  })

  it("releases a stream finished both ways, whichever side finished first, without a reset", async () => {
    const peer = rawPeer({ role: "client" })
    const accepted: Array<TunnelStream> = []
    peer.session.onStream((stream) => accepted.push(stream))
    const ours = peer.session.openStream()
    ours.end()
    await nextImmediate()
    peer.send(FrameType.WindowUpdate, Flag.FIN, ours.id, 0)
    peer.send(FrameType.WindowUpdate, Flag.SYN | Flag.FIN, 2, 0)
    accepted[0]?.end()
    await nextImmediate()
    expect(peer.session.streamCount).toBe(0)
    expect(peer.frames()).toEqual([
      windowUpdate(1, Flag.SYN),
      windowUpdate(1, Flag.FIN),
      windowUpdate(2, Flag.ACK),
      windowUpdate(2, Flag.FIN),
    ])
  })

  it("resets a stream destroyed after ending it, but not one the peer reset", async () => {
    const peer = rawPeer({ role: "client" })
    const [ended, reset] = [peer.session.openStream(), peer.session.openStream()].map(ignoreErrors)
    ended.end()
    await nextImmediate()
    ended.destroy()
    peer.send(FrameType.WindowUpdate, Flag.RST, 3, 0)
    await nextImmediate()
    expect(reset?.errored).toMatchObject({
      name: "StreamResetError",
      streamId: 3,
      message: "stream 3 was reset by the peer",
    })
    expect(peer.frames().filter((header) => header.flags === Flag.RST)).toEqual([windowUpdate(1, Flag.RST)])
    expect(peer.session.streamCount).toBe(0)
  })

  it("drops the payload of a Data frame that resets its stream", async () => {
    const peer = rawPeer({ role: "server" })
    const received: Array<Buffer> = []
    peer.session.onStream((stream) =>
      ignoreErrors(stream).on("data", (chunk: Buffer) => received.push(chunk)),
    )
    peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0)
    peer.send(FrameType.Data, Flag.RST, 1, 0, Buffer.from("dropped"))
    await nextImmediate()
    expect(received).toEqual([])
    expect(peer.session.streamCount).toBe(0)
    expect(peer.session.closed).toBe(false)
  })

  it("takes a repeated FIN, as an empty Data frame, in its stride", async () => {
    const peer = rawPeer({ role: "server" })
    peer.session.onStream(ignoreErrors)
    peer.send(FrameType.WindowUpdate, Flag.SYN | Flag.FIN, 1, 0)
    peer.send(FrameType.Data, Flag.FIN, 1, 0, Buffer.alloc(0))
    await nextImmediate()
    expect(peer.session.closed).toBe(false)
  })

  it("credits nothing back once the peer has finished sending", async () => {
    const peer = rawPeer({ role: "server" })
    const ended = new Promise((resolve) =>
      peer.session.onStream((stream) => stream.resume().on("end", resolve)),
    )
    peer.send(FrameType.Data, Flag.SYN | Flag.FIN, 1, 0, Buffer.alloc(DEFAULT_WINDOW))
    await ended
    await nextImmediate()
    expect(peer.frames()).toEqual([windowUpdate(1, Flag.ACK)])
  })

  it("counts only the streams the peer opened against its backlog", async () => {
    const peer = rawPeer({ role: "server", acceptBacklog: 1 })
    peer.session.onStream(ignoreErrors)
    ignoreErrors(peer.session.openStream())
    peer.send(FrameType.WindowUpdate, Flag.RST, 2, 0)
    peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0)
    peer.send(FrameType.WindowUpdate, Flag.SYN, 3, 0)
    peer.send(FrameType.WindowUpdate, Flag.RST, 1, 0)
    peer.send(FrameType.WindowUpdate, Flag.SYN, 5, 0)
    await nextImmediate()
    expect(peer.frames().filter((header) => header.streamId !== 2)).toEqual([
      windowUpdate(1, Flag.ACK),
      windowUpdate(3, Flag.RST),
      windowUpdate(5, Flag.ACK),
    ])
  })

  it("frames bytes at once with writeNow, within the window and the frame size", async () => {
    const peer = rawPeer({ role: "client", maxFramePayload: 1000 })
    const stream = peer.session.openStream()
    expect(stream.writeNowCapacity).toBe(DEFAULT_WINDOW)
    const source = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251))
    expect(stream.writeNow(source, 100, 2600)).toBe(2500)
    expect(stream.writeNowCapacity).toBe(DEFAULT_WINDOW - 2500)
    const rest = Buffer.alloc(DEFAULT_WINDOW)
    expect(stream.writeNow(rest, 0, rest.length)).toBe(DEFAULT_WINDOW - 2500)
    expect(stream.writeNowCapacity).toBe(0)
    expect(stream.writeNow(rest, 0, 1)).toBe(0)
    await nextImmediate()
    const lengths = dataLengths(peer)
    expect(lengths.slice(0, 3)).toEqual([1000, 1000, 500])
    expect(Math.max(...lengths)).toBe(1000)
    expect(lengths.reduce((sum, length) => sum + length)).toBe(DEFAULT_WINDOW)
    // After the SYN and the first Data header: the bytes from `start` on.
    expect(peer.bytes().subarray(24, 1024)).toEqual(source.subarray(100, 1100))
  })

  it("takes nothing with writeNow while write() data waits, after end() or once reset", async () => {
    const peer = rawPeer({ role: "client" })
    const [held, corked, ended, reset] = [1, 2, 3, 4].map(() => ignoreErrors(peer.session.openStream()))
    held?.write(Buffer.alloc(DEFAULT_WINDOW + 1))
    corked?.cork()
    corked?.write("x")
    ended?.end()
    peer.send(FrameType.WindowUpdate, Flag.RST, 7, 0)
    await nextImmediate()
    for (const stream of [held, corked, ended, reset] as Array<TunnelStream>) {
      expect(stream.writeNowCapacity).toBe(0)
      expect(stream.writeNow(Buffer.alloc(1), 0, 1)).toBe(0)
    }
  })

  it("wakes a paused producer once both the window and the transport have room", async () => {
    const peer = rawPeer({ role: "client" })
    const [a, b] = [peer.session.openStream(), peer.session.openStream()] as [TunnelStream, TunnelStream]
    a.writeNow(Buffer.alloc(DEFAULT_WINDOW), 0, DEFAULT_WINDOW)
    peer.block()
    await nextImmediate()
    expect([a.writeNowCapacity, b.writeNowCapacity]).toEqual([0, 0])
    const woken: Array<number> = []
    for (const stream of [a, b]) stream.onceWritable(() => woken.push(stream.id))
    peer.send(FrameType.WindowUpdate, 0, b.id, 10)
    expect(woken).toEqual([])
    peer.unblock()
    expect(woken).toEqual([b.id])
    peer.send(FrameType.WindowUpdate, 0, a.id, 10)
    expect(woken).toEqual([b.id, a.id])
    // Each was woken once, as asked.
    peer.send(FrameType.WindowUpdate, 0, b.id, 10)
    expect(woken).toEqual([b.id, a.id])
  })

  it("wakes a producer paused for the window alone when the credit comes while the transport is full", async () => {
    // The agent's Forwarder: a read fits, leaves less than a read's worth of window, and the transport has room,
    // so it waits for the window only. The credit then arrives while another batch has filled the transport.
    const peer = rawPeer({ role: "client" })
    const stream = peer.session.openStream()
    stream.writeNow(Buffer.alloc(DEFAULT_WINDOW - 1000), 0, DEFAULT_WINDOW - 1000)
    const woken: Array<number> = []
    stream.onceWritable(() => woken.push(stream.id))
    peer.block()
    await nextImmediate() // the batch goes out: the transport is full
    peer.send(FrameType.WindowUpdate, 0, stream.id, DEFAULT_WINDOW)
    expect(woken).toEqual([])
    // No more credit comes: the peer has been sent nothing more. The drain alone must wake it.
    peer.unblock()
    expect(woken).toEqual([stream.id])
  })

  it("wakes every producer a drain frees, though an earlier one fills the transport again", async () => {
    let drain = () => {}
    let full = true
    let fillsAgain = false
    const session = new Session(
      {
        write: () => {
          if (fillsAgain) [full, fillsAgain] = [true, false]
          return !full
        },
        onDrain: (listener) => {
          drain = listener
        },
        close: () => {},
      },
      { role: "client" },
    )
    const [a, b] = [session.openStream(), session.openStream()] as [TunnelStream, TunnelStream]
    await nextImmediate() // the SYNs go out and fill the transport
    const woken: Array<number> = []
    a.write(Buffer.alloc(DEFAULT_WINDOW)) // waits for the drain, first in line
    b.onceWritable(() => woken.push(b.id)) // waits for the drain too, with its whole window
    full = false
    fillsAgain = true
    drain() // a's first batch fills the transport again before b's turn
    expect(woken).toEqual([])
    full = false
    drain()
    expect(woken).toEqual([b.id])
  })

  it("wakes a paused producer once write() data has gone out, and never once destroyed", async () => {
    const peer = rawPeer({ role: "client" })
    const [held, destroyed] = [peer.session.openStream(), peer.session.openStream()] as [
      TunnelStream,
      TunnelStream,
    ]
    held.write(Buffer.alloc(DEFAULT_WINDOW + 1))
    const woken: Array<number> = []
    held.onceWritable(() => woken.push(held.id))
    peer.send(FrameType.WindowUpdate, 0, held.id, 2)
    expect(woken).toEqual([held.id])
    peer.block()
    await nextImmediate()
    ignoreErrors(destroyed).onceWritable(() => woken.push(destroyed.id))
    destroyed.destroy()
    peer.unblock()
    expect(woken).toEqual([held.id])
  })

  it("is socket enough for Node's HTTP client, but will not decode", () => {
    const stream = rawPeer({ role: "client" }).session.openStream()
    for (const result of [
      stream.setTimeout(1),
      stream.setNoDelay(),
      stream.setKeepAlive(),
      stream.ref(),
      stream.unref(),
    ])
      expect(result).toBe(stream)
    expect(() => stream.setEncoding("utf8")).toThrow(
      "TunnelStream does not support setEncoding(); decode the Buffers instead",
    )
  })
})

describe("Session close, GoAway and pings, frame by frame", () => {
  it("closes once, for the first reason, and tells streams, pings and late handlers why", async () => {
    const peer = rawPeer({ role: "client" })
    const stream = ignoreErrors(peer.session.openStream())
    const ping = peer.session.ping()
    const accepted: Array<TunnelStream> = []
    peer.session.onStream((remote) => accepted.push(remote))
    const reasons: Array<CloseReason> = []
    peer.session.onClose((reason) => reasons.push(reason))
    peer.session.close()
    peer.session.close("again")
    peer.session.protocolError("too late")
    peer.session.onClose((reason) => reasons.push(reason))
    expect(peer.session.closed).toBe(true)
    expect(peer.session.closeReason).toEqual({ _tag: "Local", message: "closed" })
    expect(reasons).toEqual([peer.session.closeReason, peer.session.closeReason])
    await expect(ping).rejects.toThrow("session closed: closed")
    expect(stream.errored).toMatchObject({ name: "SessionClosedError", message: "session closed: closed" })
    expect(() => peer.session.openStream()).toThrow("session is closed (closed)")
    await expect(peer.session.ping()).rejects.toThrow("session is closed (closed)")
    expect(peer.session.canOpenStream()).toBe(false)
    expect(peer.isTransportClosed()).toBe(true)
    // Nothing is decoded any more, and a local close, unlike a protocol error, sends no GoAway.
    peer.send(FrameType.WindowUpdate, Flag.SYN, 2, 0)
    expect(accepted).toEqual([])
    expect(peer.frames().map((header) => header.type)).toEqual([FrameType.WindowUpdate, FrameType.Ping])
  })

  it("names the reason it closed for", () => {
    const closes: Array<[(session: Session) => void, string]> = [
      [(session) => session.transportClosed(), "transport closed"],
      [(session) => session.protocolError("bad"), "protocol error: bad"],
    ]
    for (const [close, reason] of closes) {
      const { session } = rawPeer({ role: "client" })
      close(session)
      expect(() => session.openStream()).toThrow(`session is closed (${reason})`)
    }
  })

  it("writes nothing more once the transport has gone", async () => {
    const peer = rawPeer({ role: "client" })
    const ping = peer.session.ping()
    peer.session.transportClosed()
    await expect(ping).rejects.toThrow("session closed: transport closed")
    await nextImmediate()
    expect(peer.bytes()).toHaveLength(0)
    expect(peer.isTransportClosed()).toBe(false)
  })

  it("sends GoAway once, and opens no stream once the peer has sent one", async () => {
    const peer = rawPeer({ role: "client" })
    expect(peer.session.canOpenStream()).toBe(true)
    peer.session.goAway()
    peer.session.goAway(GoAwayCode.InternalError)
    peer.send(FrameType.GoAway, 0, 0, GoAwayCode.InternalError)
    expect(peer.session.canOpenStream()).toBe(false)
    expect(() => peer.session.openStream()).toThrow(
      "the peer sent GoAway (code 2) and accepts no new streams",
    )
    await nextImmediate()
    expect(peer.frames()).toEqual([
      { type: FrameType.GoAway, flags: 0, streamId: 0, length: GoAwayCode.Normal },
    ])
  })

  it("calls no GoAway or close handler once it is unregistered", () => {
    const peer = rawPeer({ role: "client" })
    const calls: Array<string> = []
    peer.session.onGoAway(() => calls.push("GoAway, kept"))
    peer.session.onGoAway(() => calls.push("GoAway, unregistered"))()
    peer.session.onClose(() => calls.push("close, kept"))
    peer.session.onClose(() => calls.push("close, unregistered"))()
    peer.send(FrameType.GoAway, 0, 0, GoAwayCode.Normal)
    peer.session.close()
    expect(calls).toEqual(["GoAway, kept", "close, kept"])
  })

  it("numbers its pings and settles each on its own ACK only, with the time it took", async () => {
    const peer = rawPeer({ role: "client" })
    const started = performance.now()
    const [first, second] = [peer.session.ping(), peer.session.ping()]
    let settled = false
    void second.then(() => {
      settled = true
    })
    await nextImmediate()
    expect(peer.frames()).toEqual([
      { type: FrameType.Ping, flags: Flag.SYN, streamId: 0, length: 0 },
      { type: FrameType.Ping, flags: Flag.SYN, streamId: 0, length: 1 },
    ])
    // Neither SYN nor ACK, and an ACK for a ping never sent: both ignored.
    peer.send(FrameType.Ping, 0, 0, 1)
    peer.send(FrameType.Ping, Flag.ACK, 0, 7)
    await nextImmediate()
    expect(settled).toBe(false)
    peer.send(FrameType.Ping, Flag.ACK, 0, 1)
    expect(await second).toBeLessThanOrEqual(performance.now() - started)
    peer.session.close()
    await expect(first).rejects.toThrow(SessionClosedError)
  })
})

// ---------------------------------------------------------------------------------------------
// WebSocket specifics

describe("Session over a WebSocket server with several sessions", () => {
  let server: Awaited<ReturnType<typeof startWebSocketServer>>
  beforeAll(async () => {
    server = await startWebSocketServer()
  })
  afterAll(() => server.stop())

  const stillWorks = async (pair: Pair) => {
    pair.server.onStream(echo)
    const stream = pair.client.openStream()
    const reply = readAll(stream)
    stream.end("alive")
    expect((await reply).toString()).toBe("alive")
  }

  it("a text message is a protocol error for that session only", async () => {
    const bad = await server.connectWithWs()
    const good = await server.connect()
    const reason = closeReason(bad.server)
    const clientSide = closeReason(bad.client)
    const goAway = new Promise<number>((resolve) => bad.client.onGoAway(resolve))
    bad.ws.send("hello")
    expect(await reason).toEqual({ _tag: "ProtocolError", message: "text websocket message" })
    expect(await goAway).toBe(GoAwayCode.ProtocolError)
    expect(await clientSide).toEqual({ _tag: "TransportClosed" })
    await stillWorks(good)
    good.client.close()
  })

  it("closes a session whose peer keeps asking for answers it never reads, and only that one", async () => {
    const bad = await server.connectWithWs()
    const good = await server.connect()
    const reason = closeReason(bad.server)
    let closed = false
    void reason.then(() => {
      closed = true
    })
    // The client reads nothing more; each message asks for 80,000 ping acknowledgements, 960 KB in all.
    bad.clientSocket.pause()
    const pings = Buffer.concat(
      Array.from({ length: 80_000 }, (_, id) => encodeHeader(FrameType.Ping, Flag.SYN, 0, id)),
    )
    for (let sent = 0; !closed && sent < 100; sent++) {
      bad.ws.send(pings)
      await nextImmediate()
    }
    await waitFor("the session to close", () => closed, 10_000)
    const closedWith = await reason
    expect(closedWith._tag === "ProtocolError" && closedWith.message).toMatch(
      /^the peer does not read: \d+ bytes/,
    )
    // What it asked for is dropped with it (the close handshake's grace, then cut), not kept for it.
    await waitFor("the socket to be cut", () => bad.serverSocket.destroyed, 5_000)
    await stillWorks(good)
    good.client.close()
  })

  it("garbage bytes are a protocol error for that session only", async () => {
    const bad = await server.connectWithWs()
    const good = await server.connect()
    const reason = closeReason(bad.server)
    bad.ws.send(Buffer.from("GET / HTTP/1.1\r\n\r\n"))
    const closedWith = await reason
    expect(closedWith._tag).toBe("ProtocolError")
    expect(closedWith._tag === "ProtocolError" && closedWith.message).toMatch(/unsupported yamux version/)
    await stillWorks(good)
    good.client.close()
  })

  it("stops framing data while the agent's socket is backed up and resumes on drain", async () => {
    const { client, server: session, clientSocket, serverSocket } = await server.connectAsAgent()
    const hashes = new Map<number, Promise<string>>()
    session.onStream((stream) => {
      hashes.set(
        stream.id,
        new Promise((resolve) => {
          const hash = createHash("sha256")
          ignoreErrors(stream).on("data", (chunk: Buffer) => hash.update(chunk))
          stream.on("end", () => resolve(hash.digest("hex")))
        }),
      )
    })
    // With the node not reading, the kernel buffers fill and the agent's socket starts queueing in memory.
    serverSocket.pause()
    const sent = Array.from({ length: 128 }, (_, index) =>
      sendBytes(ignoreErrors(client.openStream()), 512 * 1024).then((hash) => [index * 2 + 1, hash] as const),
    )
    while (clientSocket.writableLength === 0) await sleep(1)
    let maxQueued = 0
    for (let i = 0; i < 50; i++) {
      maxQueued = Math.max(maxQueued, clientSocket.writableLength)
      await sleep(1)
    }
    serverSocket.resume()
    for (const [id, hash] of await Promise.all(sent)) expect(await hashes.get(id)).toBe(hash)
    // Blocked after a batch; at most the batch in progress and the one already scheduled follow.
    expect(maxQueued).toBeLessThanOrEqual(2 * 256 * 1024 + 64 * 1024 + 100)
    client.close()
  })

  it("a frame may span WebSocket messages and a message may hold several frames", async () => {
    const { ws, server: session } = await server.connectWithWs()
    const received: Array<string> = []
    session.onStream((stream) =>
      ignoreErrors(stream).on("data", (chunk: Buffer) => received.push(chunk.toString())),
    )
    const bytes = Buffer.concat([
      encodeHeader(FrameType.WindowUpdate, Flag.SYN, 1, 0),
      frame(1, Buffer.from("abc")),
      frame(1, Buffer.from("defgh")),
    ])
    ws.send(bytes.subarray(0, 17))
    ws.send(bytes.subarray(17))
    while (received.join("") !== "abcdefgh") await nextImmediate()
    expect(session.closed).toBe(false)
    ws.close()
  })
})
