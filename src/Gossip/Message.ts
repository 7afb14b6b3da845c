/**
 * Gossip wire format. Every message, datagram or stream payload alike, is
 *
 *   [PROTOCOL_VERSION: 1 byte] [UTF-8 JSON of one `Message`]
 *
 * Messages are JSON objects tagged by `_tag`. The rows repeated per node or per entry are JSON arrays rather than
 * objects, so a 1400-byte datagram holds about 30 digest rows:
 *
 *   DigestRow  [nodeId, addr, version, heartbeat, state]   state: 0 live, 1 left, 2 removed (a death certificate)
 *   EntryRow   [key, value, version, flags]                 flags: bit 0 internal, bit 1 deleted (tombstone)
 *
 * Datagrams: `Digest` and `Delta`. Streams (one request, one answer): `Join` → `Welcome`, and `Delta` → `Ack` for
 * leave announcements and deltas too large for a datagram. Input is validated with Schema and never throws.
 */
import { Either, Schema } from "effect"

export const PROTOCOL_VERSION = 1

const Count = Schema.NonNegativeInt
const NodeId = Schema.String.pipe(Schema.minLength(1))

export const RowState = { live: 0, left: 1, removed: 2 } as const

export const DigestRow = Schema.Tuple(NodeId, Schema.String, Count, Count, Schema.Literal(0, 1, 2))
export type DigestRow = typeof DigestRow.Type

export const EntryFlag = { internal: 1, deleted: 2 } as const

export const EntryRow = Schema.Tuple(Schema.String, Schema.String, Count, Schema.Literal(0, 1, 2, 3))
export type EntryRow = typeof EntryRow.Type

/** Who sent a message, where to answer, and its liveness counter. */
export const Sender = Schema.Struct({ id: NodeId, addr: Schema.String, heartbeat: Count })
export type Sender = typeof Sender.Type

/**
 * The sender's entries of one node with versions in (after, latest], ascending. A receiver that does not yet hold
 * everything up to `after` must drop it: applying it would skip the entries in between for good.
 */
export const NodeDelta = Schema.Struct({
  id: NodeId,
  addr: Schema.String,
  heartbeat: Count,
  after: Count,
  entries: Schema.Array(EntryRow).pipe(
    Schema.filter((rows) => rows.every((row, i) => i === 0 || (rows[i - 1] as EntryRow)[2] < row[2]), {
      message: () => "entries must have strictly ascending versions",
    }),
  ),
})
export type NodeDelta = typeof NodeDelta.Type

/**
 * What the sender knows (a share of it when split over several datagrams). The receiver answers with a `Delta` of
 * what the sender lacks, and with a `Digest` of its own rows where it is behind on version (a pull, which the
 * sender answers with a `Delta`) or ahead on heartbeat (liveness news). Either answer is skipped when empty.
 */
export const Digest = Schema.TaggedStruct("Digest", { from: Sender, nodes: Schema.Array(DigestRow) })

export const Delta = Schema.TaggedStruct("Delta", { from: Sender, nodes: Schema.Array(NodeDelta) })

/** A joining node's own state and digest. */
export const Join = Schema.TaggedStruct("Join", {
  from: Sender,
  nodes: Schema.Array(NodeDelta),
  digest: Schema.Array(DigestRow),
})

/** The answer to `Join`: everything the joiner lacks, and the full digest (death certificates included). */
export const Welcome = Schema.TaggedStruct("Welcome", {
  from: Sender,
  nodes: Schema.Array(NodeDelta),
  digest: Schema.Array(DigestRow),
})

export const Ack = Schema.TaggedStruct("Ack", { from: Sender })

// Type and encoded form are the same (no transformations), so encoding is plain JSON.stringify.
export const Message: Schema.Schema<Message> = Schema.Union(Digest, Delta, Join, Welcome, Ack)
export type Message =
  | typeof Digest.Type
  | typeof Delta.Type
  | typeof Join.Type
  | typeof Welcome.Type
  | typeof Ack.Type

/** Bytes that are not a valid message of this protocol version. */
export class MalformedMessage extends Schema.TaggedError<MalformedMessage>()("MalformedMessage", {
  message: Schema.String,
}) {}

const decoder = new TextDecoder("utf-8", { fatal: true })
const decodeJson = Schema.decodeUnknownEither(Schema.parseJson(Message))

export const encode = (message: Message): Uint8Array => {
  const json = JSON.stringify(message)
  const bytes = Buffer.allocUnsafe(Buffer.byteLength(json) + 1)
  bytes[0] = PROTOCOL_VERSION
  bytes.write(json, 1)
  return bytes
}

export const decode = (bytes: Uint8Array): Either.Either<Message, MalformedMessage> => {
  if (bytes.length === 0) return Either.left(new MalformedMessage({ message: "empty message" }))
  if (bytes[0] !== PROTOCOL_VERSION)
    return Either.left(new MalformedMessage({ message: `unsupported version: ${bytes[0]}` }))
  return Either.try({
    try: () => decoder.decode(bytes.subarray(1)),
    catch: () => new MalformedMessage({ message: "invalid UTF-8" }),
  }).pipe(
    Either.flatMap((text) =>
      decodeJson(text).pipe(Either.mapLeft((error) => new MalformedMessage({ message: error.message }))),
    ),
  )
}

const encodedLength = (value: unknown): number => Buffer.byteLength(JSON.stringify(value))

/** The digest as datagrams of at most `maxPacketSize` bytes, each listing a share of the rows. */
export const digestPackets = (
  from: Sender,
  rows: ReadonlyArray<DigestRow>,
  maxPacketSize: number,
): Array<Uint8Array> => {
  const overhead = encodedLength({ _tag: "Digest", from, nodes: [] })
  const packets: Array<Uint8Array> = []
  let chunk: Array<DigestRow> = []
  let size = overhead
  const flush = () => {
    packets.push(encode({ _tag: "Digest", from, nodes: chunk }))
    chunk = []
    size = overhead
  }
  for (const row of rows) {
    // +1 for the separating comma.
    const length = encodedLength(row) + 1
    if (chunk.length > 0 && size + length > maxPacketSize) flush()
    chunk.push(row)
    size += length
  }
  if (chunk.length > 0 || packets.length === 0) flush()
  return packets
}
