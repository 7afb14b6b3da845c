/**
 * What gossip needs from a network. The real one is UDP for datagrams and TCP for streams on the gossip port;
 * `MemoryNetwork` simulates one for tests. Payloads are bytes: decoding, and counting what does not decode, is the
 * protocol's job, so every transport gets the same treatment of garbage.
 */
import { Effect, type Option, Schema, type Scope } from "effect"

/**
 * A reliable exchange did not complete. "refused": the peer dropped the request as unauthentic (`detail` says
 * why); "unauthenticated": its answer did not authenticate here.
 */
export class TransportError extends Schema.TaggedError<TransportError>()("TransportError", {
  reason: Schema.Literal("unreachable", "closed", "timeout", "refused", "unauthenticated"),
  address: Schema.String,
  detail: Schema.optional(Schema.String),
}) {
  override get message(): string {
    return `${this.address}: ${this.reason}${this.detail === undefined ? "" : `: ${this.detail}`}`
  }
}

/** `from` is where a datagram or stream came from (host:port), for logs: nothing proves it. */
export interface Handler {
  /** One incoming datagram. */
  readonly packet: (bytes: Uint8Array, from: string) => Effect.Effect<void>
  /** One incoming request stream: the answer to write back, or none to close the stream without one. */
  readonly request: (bytes: Uint8Array, from: string) => Effect.Effect<Option.Option<Uint8Array>>
}

export interface Transport {
  /** Where peers reach this node (host:port); advertised in every message. */
  readonly address: string
  /** Sends a datagram, best effort: it may be lost, duplicated or reordered, and no error is reported. */
  readonly send: (address: string, packet: Uint8Array) => Effect.Effect<void>
  /** One reliable request and its answer (a TCP stream in the real transport). The caller sets the deadline. */
  readonly request: (address: string, payload: Uint8Array) => Effect.Effect<Uint8Array, TransportError>
  /** Hands incoming datagrams and requests to the handler for as long as the scope lives. */
  readonly serve: (handler: Handler) => Effect.Effect<void, never, Scope.Scope>
}

/** A transport that reaches nobody: a cluster of one. */
export const isolated: Transport = {
  address: "",
  send: () => Effect.void,
  request: (address) => Effect.fail(new TransportError({ reason: "unreachable", address })),
  serve: () => Effect.void,
}
