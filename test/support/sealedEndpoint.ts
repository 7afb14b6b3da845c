import { Effect, Option } from "effect"
import * as Seal from "../../src/Gossip/Seal.js"
import { type Handler, type Transport, TransportError } from "../../src/Gossip/Transport.js"

const text = (bytes: Uint8Array) => Buffer.from(bytes).toString()

/**
 * One node's side of the wire: the sealing wrapper over a transport the test drives by hand. What reaches the
 * gossip engine is recorded; requests are answered with "re: <request>".
 */
export const sealedEndpoint = (
  keys: ReadonlyArray<Buffer> | undefined,
  rawRequest: Transport["request"] = (address) =>
    Effect.fail(new TransportError({ reason: "unreachable", address })),
) =>
  Effect.gen(function* () {
    let served: Handler | undefined
    const sent: Array<Uint8Array> = []
    const received: Array<string> = []
    const sealed = yield* Seal.make(
      {
        address: "10.0.0.1:8003",
        send: (_address, packet) => Effect.sync(() => void sent.push(packet)),
        request: rawRequest,
        serve: (handler) =>
          Effect.sync(() => {
            served = handler
          }),
      },
      keys,
    )
    yield* sealed.transport.serve({
      packet: (packet) => Effect.sync(() => void received.push(text(packet))),
      request: (payload) => Effect.succeed(Option.some(Buffer.from(`re: ${text(payload)}`))),
    })
    const handler = served as Handler
    return {
      sealed,
      sent,
      received,
      /** A datagram arriving from the network. */
      deliver: (packet: Uint8Array) => handler.packet(packet, "10.0.0.9:8003"),
      /** A request arriving from the network, and the raw answer written back. */
      answer: (payload: Uint8Array) => handler.request(payload, "10.0.0.9:8003"),
      /** Reaches this endpoint's request handler, as a stream would. */
      asPeer: (_address: string, payload: Uint8Array) =>
        Effect.flatMap(handler.request(payload, "10.0.0.2:8003"), (answer) =>
          Option.isSome(answer)
            ? Effect.succeed(answer.value)
            : Effect.fail(new TransportError({ reason: "closed", address: "10.0.0.1:8003" })),
        ),
      rejected: sealed.rejected,
    }
  })
