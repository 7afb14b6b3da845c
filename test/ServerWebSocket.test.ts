import { createHash, randomBytes } from "node:crypto"
import { once } from "node:events"
import type { IncomingMessage } from "node:http"
import * as net from "node:net"
import { Duplex, PassThrough } from "node:stream"
import { setTimeout as sleep } from "node:timers/promises"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  encodeHeader,
  Flag,
  FrameDecoder,
  type FrameHeader,
  FrameType,
  GoAwayCode,
} from "../src/Tunnel/internal/Frame.js"
import type { CloseReason, Session, TunnelStream } from "../src/Tunnel/internal/Session.js"
import { acceptValue, acceptWebSocket } from "../src/Tunnel/internal/WebSocketHandshake.js"
import { Opcode } from "../src/Tunnel/internal/WebSocketReader.js"
import { runWebSocketSession } from "../src/Tunnel/internal/WebSocketSession.js"
import {
  type ClientFrame,
  clientFrame,
  parseServerFrames,
  type ServerFrame,
} from "./support/webSocketFrames.js"
import { startWebSocketServer } from "./support/webSocketServer.js"

let server: Awaited<ReturnType<typeof startWebSocketServer>>
beforeAll(async () => {
  server = await startWebSocketServer()
})
afterAll(() => server.stop())

const handshake = (headers: Record<string, string>, method = "GET") =>
  `${method} /pico/v1/listener/e HTTP/1.1\r\nHost: pico.test\r\n` +
  Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("") +
  "\r\n"

const validHeaders = () => ({
  Upgrade: "websocket",
  Connection: "Upgrade",
  "Sec-WebSocket-Version": "13",
  "Sec-WebSocket-Key": randomBytes(16).toString("base64"),
})

/** A hand-driven WebSocket client on a raw TCP connection. */
const rawClient = async (headers: Record<string, string> = validHeaders(), method?: string) => {
  const socket = net.connect(server.port, "127.0.0.1")
  let received = Buffer.alloc(0)
  let ended = false
  const changed: Array<() => void> = []
  const notify = () => {
    for (const listener of changed.splice(0)) listener()
  }
  socket.on("data", (chunk: Buffer) => {
    received = Buffer.concat([received, chunk])
    notify()
  })
  socket.on("end", () => {
    ended = true
    notify()
  })
  socket.on("error", () => {})
  /** Waits until `check` finds what it wants in the bytes received so far. */
  const waitFor = async <A>(check: (bytes: Buffer, ended: boolean) => A | undefined): Promise<A> => {
    for (;;) {
      const found = check(received, ended)
      if (found !== undefined) return found
      if (ended) throw new Error(`connection ended; received ${received.toString("latin1")}`)
      await new Promise<void>((resolve) => changed.push(resolve))
    }
  }
  await once(socket, "connect")
  socket.write(handshake(headers, method))
  const head = await waitFor((bytes) => {
    const end = bytes.indexOf("\r\n\r\n")
    return end < 0 ? undefined : bytes.subarray(0, end).toString("latin1")
  })
  const headLength = head.length + 4
  /** The frames the server sent after its handshake response. */
  const frames = async (until: (frames: Array<ServerFrame>) => boolean): Promise<Array<ServerFrame>> =>
    waitFor((bytes) => {
      const { frames } = parseServerFrames(bytes.subarray(headLength))
      return until(frames) ? frames : undefined
    })
  const body = () => waitFor((bytes, ended) => (ended ? bytes.subarray(headLength).toString() : undefined))
  const send = (...frames: Array<ClientFrame>) => socket.write(Buffer.concat(frames.map(clientFrame)))
  return { socket, head, frames, body, send, ended: () => waitFor((_, ended) => ended || undefined) }
}

const closeReason = (session: Session): Promise<CloseReason> =>
  new Promise((resolve) => session.onClose(resolve))

/** yamux frames carried in the server's binary messages. */
const yamuxFrames = (frames: Array<ServerFrame>): Array<FrameHeader> => {
  const headers: Array<FrameHeader> = []
  const decoder = new FrameDecoder({
    onFrame: (header) => headers.push(header),
    onData: (header, _piece, first) => first && headers.push(header),
    onError: (reason) => {
      throw new Error(reason)
    },
  })
  for (const frame of frames) if (frame.opcode === Opcode.Binary) decoder.push(Buffer.from(frame.payload))
  return headers
}

const binary = (payload: Buffer, options: Partial<ClientFrame> = {}): ClientFrame => ({
  opcode: Opcode.Binary,
  payload,
  ...options,
})

/** Opens yamux stream 1 on `session` from a raw client and collects what arrives on it. */
const acceptStream = (session: Session) =>
  new Promise<TunnelStream>((resolve) => session.onStream((stream) => resolve(stream.on("error", () => {}))))

const readAll = async (stream: TunnelStream): Promise<Buffer> => {
  const chunks: Array<Buffer> = []
  stream.on("data", (chunk: Buffer) => chunks.push(chunk))
  await once(stream, "end")
  return Buffer.concat(chunks)
}

const dataFrame = (streamId: number, payload: Buffer, flags = 0) =>
  Buffer.concat([encodeHeader(FrameType.Data, flags, streamId, payload.length), payload])

describe("WebSocket handshake", () => {
  it("computes Sec-WebSocket-Accept as in RFC 6455 §1.3", () => {
    expect(acceptValue("dGhlIHNhbXBsZSBub25jZQ==")).toBe("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
  })

  it("answers a valid handshake with 101, the accept value and no extension or subprotocol", async () => {
    const headers = {
      ...validHeaders(),
      Connection: "keep-alive, Upgrade",
      Upgrade: "WebSocket",
      "Sec-WebSocket-Extensions": "permessage-deflate",
      "Sec-WebSocket-Protocol": "chat",
    }
    const client = await rawClient(headers)
    const lines = client.head.split("\r\n")
    expect(lines[0]).toBe("HTTP/1.1 101 Switching Protocols")
    expect(lines).toContain(`Sec-WebSocket-Accept: ${acceptValue(headers["Sec-WebSocket-Key"])}`)
    expect(client.head).not.toMatch(/extensions|protocol:/i)
    client.socket.destroy()
    ;(await server.nextAccepted()).session.close()
  })

  const refuses = async (headers: Record<string, string>, error: RegExp, method?: string) => {
    const client = await rawClient(headers, method)
    expect(client.head.split("\r\n")[0]).toBe("HTTP/1.1 400 Bad Request")
    expect(client.head).toMatch(/content-type: application\/json/i)
    expect(JSON.parse(await client.body()).error).toMatch(error)
  }

  it("refuses a missing or invalid key with a 400 JSON error", async () => {
    const { "Sec-WebSocket-Key": _, ...withoutKey } = validHeaders()
    await refuses(withoutKey, /Sec-WebSocket-Key/)
    await refuses({ ...validHeaders(), "Sec-WebSocket-Key": randomBytes(15).toString("base64") }, /Key/)
    await refuses({ ...validHeaders(), "Sec-WebSocket-Key": "not base64 at all, no way!" }, /Key/)
  })

  it("refuses a wrong version", async () => {
    await refuses({ ...validHeaders(), "Sec-WebSocket-Version": "8" }, /Sec-WebSocket-Version/)
  })

  it("refuses an upgrade to something else, or by another method than GET", async () => {
    await refuses({ ...validHeaders(), Upgrade: "h2c" }, /Upgrade: websocket/)
    await refuses(validHeaders(), /GET/, "POST")
  })

  // Node only reports an upgrade when Connection has the token, so this check is exercised directly.
  it("requires an upgrade token in Connection and HTTP/1.1", () => {
    const answer = (connection: string, minor = 1) => {
      const socket = new PassThrough()
      const headers = { ...validHeaders(), Connection: connection }
      const req = {
        method: "GET",
        httpVersionMajor: 1,
        httpVersionMinor: minor,
        headers: Object.fromEntries(
          Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]),
        ),
      }
      const refused = acceptWebSocket(req as unknown as IncomingMessage, socket)
      return [refused, socket.read()?.toString().split("\r\n")[0]]
    }
    expect(answer("keep-alive, Upgrade")).toEqual([undefined, "HTTP/1.1 101 Switching Protocols"])
    expect(answer("upgrade")).toEqual([undefined, "HTTP/1.1 101 Switching Protocols"])
    expect(answer("keep-alive, upgraded")).toEqual([
      "expected Connection: Upgrade",
      "HTTP/1.1 400 Bad Request",
    ])
    expect(answer("Upgrade", 0)).toEqual(["a websocket handshake needs HTTP/1.1", "HTTP/1.1 400 Bad Request"])
  })
})

describe("Pico's server WebSocket endpoint", () => {
  const connectRaw = async () => {
    const client = await rawClient()
    const { session } = await server.nextAccepted()
    return { client, session }
  }

  it("delivers data sent with 16- and 64-bit lengths, fragmented, with random masks", async () => {
    const { client, session } = await connectRaw()
    const stream = acceptStream(session)
    const payload = randomBytes(200_000)
    const bytes = Buffer.concat([
      encodeHeader(FrameType.WindowUpdate, Flag.SYN, 1, 0),
      dataFrame(1, payload.subarray(0, 1000)),
      dataFrame(1, payload.subarray(1000), Flag.FIN),
    ])
    client.send(
      binary(bytes.subarray(0, 500)), // 16-bit length
      binary(bytes.subarray(500, 100_000), { fin: false }), // 64-bit length, a message in three frames
      { opcode: Opcode.Ping, payload: Buffer.from("between fragments") },
      { opcode: Opcode.Continuation, payload: bytes.subarray(100_000, 100_010), fin: false },
      { opcode: Opcode.Continuation, payload: bytes.subarray(100_010) },
    )
    expect((await readAll(await stream)).equals(payload)).toBe(true)
    session.close()
  })

  it("answers a ping with a pong carrying the same payload", async () => {
    const { client, session } = await connectRaw()
    client.send({ opcode: Opcode.Ping, payload: Buffer.from("are you there") })
    client.send({ opcode: Opcode.Pong, payload: Buffer.from("unsolicited, ignored") })
    const frames = await client.frames((frames) => frames.some((frame) => frame.opcode === Opcode.Pong))
    expect(frames.map((frame) => [frame.opcode, frame.payload.toString()])).toEqual([
      [Opcode.Pong, "are you there"],
    ])
    expect(session.closed).toBe(false)
    session.close()
  })

  it("answers a close frame with its code and hangs up; the session ends as TransportClosed", async () => {
    const { client, session } = await connectRaw()
    const reason = closeReason(session)
    client.send({ opcode: Opcode.Close, payload: Buffer.from([0x03, 0xe8, ...Buffer.from("bye")]) })
    const frames = await client.frames((frames) => frames.length > 0)
    expect(frames.map((frame) => [frame.opcode, frame.payload.toString("hex")])).toEqual([
      [Opcode.Close, "03e8"],
    ])
    await client.ended()
    expect(await reason).toEqual({ _tag: "TransportClosed" })
  })

  it("delivers what arrived just before a FIN without a close frame, then ends as TransportClosed", async () => {
    const { client, session } = await connectRaw()
    const stream = acceptStream(session)
    const reason = closeReason(session)
    const payload = randomBytes(100_000)
    client.send(
      binary(
        Buffer.concat([
          encodeHeader(FrameType.WindowUpdate, Flag.SYN, 1, 0),
          dataFrame(1, payload, Flag.FIN),
        ]),
      ),
    )
    client.socket.end()
    expect((await readAll(await stream)).equals(payload)).toBe(true)
    expect(await reason).toEqual({ _tag: "TransportClosed" })
    await client.ended()
  })

  it("over any Duplex, decodes data that arrives together with the end of input before closing", async () => {
    // A TLS socket, unlike TCP, can emit its last data and 'end' in the same loop iteration.
    const socket = new Duplex({ read: () => {}, write: (_chunk, _encoding, callback) => callback() })
    const session = runWebSocketSession(socket, Buffer.alloc(0), { role: "server" })
    const received: Array<Buffer> = []
    session.onStream((stream) =>
      stream.on("error", () => {}).on("data", (chunk: Buffer) => received.push(chunk)),
    )
    const reason = closeReason(session)
    const payload = randomBytes(1000)
    const bytes = Buffer.concat([encodeHeader(FrameType.WindowUpdate, Flag.SYN, 1, 0), dataFrame(1, payload)])
    socket.push(clientFrame(binary(bytes)))
    socket.push(null)
    expect(await reason).toEqual({ _tag: "TransportClosed" })
    expect(Buffer.concat(received).equals(payload)).toBe(true)
  })

  it("sends a close frame and hangs up when the session closes, after the frames queued before it", async () => {
    const { client, session } = await connectRaw()
    session.goAway()
    session.close()
    await client.ended()
    const frames = await client.frames(() => true)
    expect(frames.at(-1)).toMatchObject({ opcode: Opcode.Close, payload: Buffer.from([0x03, 0xe8]) })
    expect(yamuxFrames(frames)).toEqual([
      { type: FrameType.GoAway, flags: 0, streamId: 0, length: GoAwayCode.Normal },
    ])
  })

  it("cuts a peer that does not finish closing after the grace period", async () => {
    const client = await rawClient()
    const { session, socket } = await server.nextAccepted()
    // The client neither answers the close frame nor ends its side of the connection.
    client.socket.allowHalfOpen = true
    const closed = once(socket, "close")
    const started = performance.now()
    session.close()
    await client.ended()
    expect(socket.destroyed).toBe(false)
    await closed
    expect(performance.now() - started).toBeGreaterThan(1_500)
  })

  describe("closes only the offending session, with GoAway(protocol error) and close code 1002", () => {
    const violations: Array<[string, ClientFrame, RegExp]> = [
      ["a text frame", { opcode: Opcode.Text, payload: Buffer.from("hi") }, /^text websocket message$/],
      ["an unmasked frame", binary(Buffer.from("x"), { mask: null }), /unmasked/],
      ["an RSV bit", binary(Buffer.from("x"), { rsv: 0x40 }), /RSV bits/],
      ["an oversize control frame", { opcode: Opcode.Ping, payload: Buffer.alloc(126) }, /126 bytes/],
      [
        "a fragmented control frame",
        { opcode: Opcode.Ping, payload: Buffer.alloc(1), fin: false },
        /fragmented/,
      ],
      [
        "a close frame with a reserved code",
        { opcode: Opcode.Close, payload: Buffer.from([0x03, 0xed]) },
        /1005/,
      ],
    ]
    it.each(violations)("on %s", async (_, frame, message) => {
      const good = await server.connect("random")
      const { client, session } = await connectRaw()
      const reason = closeReason(session)
      client.send(frame)
      const closedWith = await reason
      expect(closedWith._tag).toBe("ProtocolError")
      expect(closedWith._tag === "ProtocolError" && closedWith.message).toMatch(message)
      await client.ended()
      const frames = await client.frames(() => true)
      expect(yamuxFrames(frames)).toEqual([
        { type: FrameType.GoAway, flags: 0, streamId: 0, length: GoAwayCode.ProtocolError },
      ])
      expect(frames.at(-1)).toMatchObject({ opcode: Opcode.Close, payload: Buffer.from([0x03, 0xea]) })
      // The other session carries on.
      const stream = acceptStream(good.server)
      good.client
        .openStream()
        .on("error", () => {})
        .end("still fine")
      expect((await readAll(await stream)).toString()).toBe("still fine")
      expect(good.server.closed).toBe(false)
      good.client.close()
    })
  })

  it("stops framing data while the socket is backed up and resumes on drain", async () => {
    const { client, server: session, clientSocket, serverSocket } = await server.connectAsAgent()
    const hashes = new Map<number, Promise<string>>()
    client.onStream((stream) => {
      hashes.set(
        stream.id,
        new Promise((resolve) => {
          const hash = createHash("sha256")
          stream.on("error", () => {}).on("data", (chunk: Buffer) => hash.update(chunk))
          stream.on("end", () => resolve(hash.digest("hex")))
        }),
      )
    })
    // With the agent not reading, the kernel buffers fill and the server's socket starts queueing in memory.
    clientSocket.pause()
    const block = randomBytes(64 * 1024)
    const sent = Array.from({ length: 128 }, async () => {
      const stream = session.openStream().on("error", () => {})
      const hash = createHash("sha256")
      for (let i = 0; i < 8; i++) {
        hash.update(block)
        if (!stream.write(block)) await once(stream, "drain")
      }
      stream.end()
      return [stream.id, hash.digest("hex")] as const
    })
    while (serverSocket.writableLength === 0) await sleep(1)
    let maxQueued = 0
    for (let i = 0; i < 50; i++) {
      maxQueued = Math.max(maxQueued, serverSocket.writableLength)
      await sleep(1)
    }
    clientSocket.resume()
    for (const [id, hash] of await Promise.all(sent)) expect(await hashes.get(id)).toBe(hash)
    // Blocked after a batch; at most the batch in progress and the one already scheduled follow.
    expect(maxQueued).toBeLessThanOrEqual(2 * 256 * 1024 + 64 * 1024 + 100)
    client.close()
  })
})
