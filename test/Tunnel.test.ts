import type * as http from "node:http"
import { Duplex } from "node:stream"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, TestClock } from "effect"
import { encodeHeader, Flag, FrameDecoder, FrameType } from "../src/Tunnel/Frame.js"
import * as Tunnel from "../src/Tunnel.js"
import { clientFrame, parseServerFrames } from "./support/webSocketFrames.js"

/** An agent's WebSocket upgrade request, as the server's `upgrade` event hands it over. */
const upgradeRequest = {
  method: "GET",
  httpVersionMajor: 1,
  httpVersionMinor: 1,
  headers: {
    upgrade: "websocket",
    connection: "Upgrade",
    "sec-websocket-version": "13",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
  },
} as unknown as http.IncomingMessage

/** A connection whose peer completed the handshake and then went silent: it never answers a ping. */
const silentPeer = () => new Duplex({ read() {}, write: (_chunk, _encoding, done) => done() })

/** A connection whose peer answers every ping; `answered(n)` completes once it has answered n. */
const answeringPeer = () => {
  let answers = 0
  let onAnswer = () => {}
  let handshake = true
  let unread = Buffer.alloc(0)
  const socket: Duplex = new Duplex({
    read() {},
    write: (chunk: Buffer, _encoding, done) => {
      // The first write is the 101 response; WebSocket frames of yamux frames follow.
      if (handshake) handshake = false
      else {
        const { frames, used } = parseServerFrames(Buffer.concat([unread, chunk]))
        unread = Buffer.concat([unread, chunk]).subarray(used)
        for (const { payload } of frames) decoder.push(payload)
      }
      done()
    },
  })
  const decoder = new FrameDecoder({
    onFrame: ({ type, flags, length }) => {
      if (type !== FrameType.Ping || flags !== Flag.SYN) return
      const ack = encodeHeader(FrameType.Ping, Flag.ACK, 0, length)
      socket.push(clientFrame({ opcode: 2, payload: ack }))
      answers++
      onAnswer()
    },
    onData: () => {},
    onError: (reason) => socket.destroy(new Error(reason)),
  })
  const answered = (count: number) =>
    Effect.async<void>((resume) => {
      onAnswer = () => answers >= count && resume(Effect.void)
      onAnswer()
    })
  return { socket, answered }
}

describe("Tunnel heartbeat", () => {
  it.scoped("closes a session whose peer leaves a ping unanswered for the timeout, then stops", () =>
    Effect.gen(function* () {
      const tunnel = Tunnel.make({ interval: 1_000, timeout: 500 })
      const session = yield* tunnel.serve(upgradeRequest, silentPeer(), Buffer.alloc(0))
      yield* TestClock.adjust("1499 millis")
      expect(session.closed).toBe(false)
      yield* TestClock.adjust("1 millis")
      expect(session.closeReason).toEqual({ _tag: "Local", message: "heartbeat timeout" })
      expect(Chunk.toArray(yield* TestClock.sleeps())).toEqual([])
    }),
  )

  it.live("keeps pinging a peer that answers, and keeps its session", () =>
    Effect.gen(function* () {
      const peer = answeringPeer()
      const tunnel = Tunnel.make({ interval: 1, timeout: 10_000 })
      const session = yield* tunnel.serve(upgradeRequest, peer.socket, Buffer.alloc(0))
      yield* peer
        .answered(3)
        .pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "no 3 pings" }))
      expect(session.closed).toBe(false)
    }).pipe(Effect.scoped),
  )
})
