/**
 * Authenticated gossip (`--gossip.secret-key`): a wrapper over any `Transport` that seals every datagram, every
 * request and every answer with AES-256-GCM under the cluster's gossip subkeys, and drops whatever does not open,
 * is stale or was seen before. Sending uses the first key, opening tries each, so keys rotate without downtime.
 * The wire format is in docs/protocol.md ("Gossip"):
 *
 *   envelope  [0x81] [timestamp: uint64 BE, ms since the epoch] [nonce: 12 random bytes] [ciphertext] [tag: 16 B]
 *   AAD       [kind: 0 datagram, 1 request, 2 answer] [the envelope's first 21 bytes] [answers: the request's nonce]
 *   refusal   [0x80] [reason, ASCII]: the answer to a request that was dropped, so the sender can say why
 *
 * The kind in the AAD keeps a datagram from being replayed as a request; the request's nonce in an answer's AAD
 * binds the answer to its request, so a recorded answer cannot stand in for a new one.
 *
 * Replay protection survives restarts without storing anything: a message is accepted only if its timestamp is
 * within 30 s of this node's clock (the nodes' clocks must agree that well; NTP does) and not before this node
 * started, and its nonce has not been seen; nonces are remembered for as long as their timestamps are in the window.
 * A node without keys sends and accepts plain messages only, and drops sealed ones.
 */
import { createCipheriv, createDecipheriv, randomFillSync } from "node:crypto"
import { Clock, Effect, Either, Option } from "effect"
import { type Handler, type Transport, TransportError } from "./Transport.js"

export const SEALED = 0x81
const REFUSED = 0x80
const TIMESTAMP_BYTES = 8
const NONCE_BYTES = 12
const TAG_BYTES = 16
const HEADER_BYTES = 1 + TIMESTAMP_BYTES + NONCE_BYTES

/** Bytes sealing adds to a message. */
export const overhead = HEADER_BYTES + TAG_BYTES

export type Kind = "datagram" | "request" | "answer"

const kindByte: Record<Kind, number> = { datagram: 0, request: 1, answer: 2 }

const additionalData = (kind: Kind, header: Uint8Array, request: Uint8Array | undefined) =>
  Buffer.concat([Buffer.of(kindByte[kind]), header, request ?? Buffer.alloc(0)])

/** Seals `plain` as a message of `kind` stamped `now`; an answer passes its request's nonce as `request`. */
export const seal = (
  key: Buffer,
  kind: Kind,
  plain: Uint8Array,
  now: number,
  request?: Uint8Array,
): Uint8Array => {
  const header = Buffer.allocUnsafe(HEADER_BYTES)
  header[0] = SEALED
  // Whole milliseconds: a clock may report fractions (the TestClock does).
  header.writeBigUInt64BE(BigInt(Math.floor(now)), 1)
  randomFillSync(header, 1 + TIMESTAMP_BYTES, NONCE_BYTES)
  const cipher = createCipheriv("aes-256-gcm", key, header.subarray(1 + TIMESTAMP_BYTES))
  cipher.setAAD(additionalData(kind, header, request))
  return Buffer.concat([header, cipher.update(plain), cipher.final(), cipher.getAuthTag()])
}

/** The nonce of a sealed message (which an answer is bound to). */
export const nonceOf = (envelope: Uint8Array): Uint8Array =>
  envelope.subarray(1 + TIMESTAMP_BYTES, HEADER_BYTES)

export interface Opened {
  readonly plain: Uint8Array
  readonly timestamp: number
  readonly nonce: Uint8Array
}

/** The contents of an envelope that one of the keys opens as a message of `kind`; undefined otherwise. */
export const open = (
  keys: ReadonlyArray<Buffer>,
  kind: Kind,
  envelope: Uint8Array,
  request?: Uint8Array,
): Opened | undefined => {
  if (envelope.length < overhead || envelope[0] !== SEALED) return undefined
  const bytes = Buffer.from(envelope.buffer, envelope.byteOffset, envelope.length)
  const header = bytes.subarray(0, HEADER_BYTES)
  const nonce = nonceOf(bytes)
  const ciphertext = bytes.subarray(HEADER_BYTES, bytes.length - TAG_BYTES)
  const tag = bytes.subarray(bytes.length - TAG_BYTES)
  for (const key of keys) {
    const decipher = createDecipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES })
    decipher.setAAD(additionalData(kind, header, request))
    decipher.setAuthTag(tag)
    try {
      const plain = Buffer.concat([decipher.update(ciphertext), decipher.final()])
      return { plain, timestamp: Number(header.readBigUInt64BE(1)), nonce }
    } catch {
      // Not this key, or not authentic: try the next one.
    }
  }
  return undefined
}

// --- Replay protection ---

/**
 * Accepts each authentic nonce once while its timestamp is within `window` of now and not before `startedAt`.
 * Remembers at most `capacity` nonces: when full it forgets the oldest and from then on refuses anything stamped
 * at or before it, so a forgotten nonce can never be accepted again (under load, the window just narrows).
 */
export const replayGuard = (window: number, capacity: number, startedAt: number) => {
  const seen = new Map<string, number>()
  let floor = startedAt
  return (nonce: Uint8Array, timestamp: number, now: number): "fresh" | "stale" | "replay" => {
    if (timestamp < floor || Math.abs(now - timestamp) > window) return "stale"
    const key = Buffer.from(nonce).toString("base64")
    if (seen.has(key)) return "replay"
    // In arrival order, which is about timestamp order: drop the expired ones at the front.
    for (const [oldKey, oldTimestamp] of seen) {
      if (oldTimestamp >= now - window && seen.size < capacity) break
      seen.delete(oldKey)
      floor = Math.max(floor, oldTimestamp + 1)
    }
    seen.set(key, timestamp)
    return "fresh"
  }
}

// --- The wrapper ---

/** How far a message's timestamp may be from this node's clock, in ms. */
const WINDOW = 30_000
/** How many nonces are remembered at most: far more than a node receives in a window. */
const REPLAY_CAPACITY = 16_384
/** At most one warning per reason this often (ms); the ones held back are counted in the next. */
const WARN_EVERY = 10_000

/** Why an incoming message was dropped; the `reason` label of pico_gossip_rejected_messages_total. */
export const rejectReasons = ["unauthenticated", "no_key", "bad_seal", "replay", "stale"] as const
export type RejectReason = (typeof rejectReasons)[number]

/** What a refusal tells the sender, by reason. */
const refusalDetail: Record<RejectReason, string> = {
  unauthenticated: "the peer requires --gossip.secret-key and this node sent an unsealed message",
  no_key: "the peer has no --gossip.secret-key",
  bad_seal: "the peer has none of this node's keys (compare --gossip.secret-key)",
  replay: "the peer had seen this request before",
  stale: `the peer's clock and this node's differ by more than ${WINDOW / 1000}s`,
}

const isRejectReason = (text: string): text is RejectReason =>
  (rejectReasons as ReadonlyArray<string>).includes(text)

const refusal = (reason: RejectReason): Uint8Array =>
  Buffer.concat([Buffer.of(REFUSED), Buffer.from(reason, "ascii")])

export interface Sealed {
  /** The wrapped transport: what the gossip engine sends and receives through, in plain messages. */
  readonly transport: Transport
  /** Messages dropped for failing authentication, by reason, since start. */
  readonly rejected: Effect.Effect<Readonly<Record<RejectReason, number>>>
}

/**
 * Seals and opens everything on `transport` with `keys` (the first sends); plain messages only when undefined.
 * What is dropped is counted by reason and logged, at most one warning per reason every 10 s.
 */
export const make = (transport: Transport, keys: ReadonlyArray<Buffer> | undefined): Effect.Effect<Sealed> =>
  Effect.gen(function* () {
    const fresh = replayGuard(WINDOW, REPLAY_CAPACITY, yield* Clock.currentTimeMillis)
    const primary = keys?.[0]
    const rejected = Object.fromEntries(rejectReasons.map((reason) => [reason, 0])) as Record<
      RejectReason,
      number
    >
    const warned = new Map<RejectReason, { at: number; suppressed: number }>()

    const reject = (reason: RejectReason, from: string) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        rejected[reason]++
        const last = warned.get(reason)
        if (last !== undefined && now - last.at < WARN_EVERY) {
          last.suppressed++
          return Effect.void
        }
        warned.set(reason, { at: now, suppressed: 0 })
        return Effect.logWarning("dropped gossip that failed authentication").pipe(
          Effect.annotateLogs({ subsystem: "gossip", reason, from, suppressed: last?.suppressed ?? 0 }),
        )
      })

    /** An incoming datagram or request as the plain message it carries, or why it is dropped. */
    const admit = (kind: Kind, bytes: Uint8Array, now: number): Either.Either<Uint8Array, RejectReason> => {
      if (keys === undefined) return bytes[0] === SEALED ? Either.left("no_key") : Either.right(bytes)
      if (bytes[0] !== SEALED) return Either.left("unauthenticated")
      const opened = open(keys, kind, bytes)
      if (opened === undefined) return Either.left("bad_seal")
      const verdict = fresh(opened.nonce, opened.timestamp, now)
      return verdict === "fresh" ? Either.right(opened.plain) : Either.left(verdict)
    }

    const serve = (handler: Handler) =>
      transport.serve({
        packet: (bytes, from) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Either.match(admit("datagram", bytes, now), {
              onLeft: (reason) => reject(reason, from),
              onRight: (plain) => handler.packet(plain, from),
            }),
          ),
        request: (bytes, from) =>
          Effect.gen(function* () {
            const now = yield* Clock.currentTimeMillis
            const admitted = admit("request", bytes, now)
            if (Either.isLeft(admitted)) {
              yield* reject(admitted.left, from)
              return Option.some(refusal(admitted.left))
            }
            const answer = yield* handler.request(admitted.right, from)
            if (primary === undefined || Option.isNone(answer)) return answer
            return Option.some(
              seal(primary, "answer", answer.value, yield* Clock.currentTimeMillis, nonceOf(bytes)),
            )
          }),
      })

    const request = (address: string, payload: Uint8Array) =>
      Effect.gen(function* () {
        const sealed =
          primary === undefined ? payload : seal(primary, "request", payload, yield* Clock.currentTimeMillis)
        const answer = yield* transport.request(address, sealed)
        if (answer[0] === REFUSED) {
          const reason = Buffer.from(answer.subarray(1)).toString("ascii")
          return yield* new TransportError({
            reason: "refused",
            address,
            ...(isRejectReason(reason) ? { detail: refusalDetail[reason] } : {}),
          })
        }
        if (keys === undefined) return answer
        const opened = open(keys, "answer", answer, nonceOf(sealed))
        if (opened !== undefined) return opened.plain
        yield* reject(answer[0] === SEALED ? "bad_seal" : "unauthenticated", address)
        return yield* new TransportError({ reason: "unauthenticated", address })
      })

    return {
      transport: {
        address: transport.address,
        send: (address, packet) =>
          primary === undefined
            ? transport.send(address, packet)
            : Effect.flatMap(Clock.currentTimeMillis, (now) =>
                transport.send(address, seal(primary, "datagram", packet, now)),
              ),
        request,
        serve,
      },
      rejected: Effect.sync(() => ({ ...rejected })),
    }
  })
