import { randomBytes } from "node:crypto"

export interface ClientFrame {
  readonly opcode: number
  readonly payload: Buffer
  readonly fin?: boolean
  /** RSV1-3 as the bits 0x40, 0x20, 0x10 of the first byte. */
  readonly rsv?: number
  /** The masking key; `null` sends the frame unmasked (which a server must refuse). Default: random. */
  readonly mask?: Buffer | null
  /** How the length is encoded; default the minimal form. Larger forms are legal, if wasteful. */
  readonly lengthBits?: 7 | 16 | 64
}

/** A frame as a WebSocket client sends it (RFC 6455 §5.2), masked unless told otherwise. */
export const clientFrame = (frame: ClientFrame): Buffer => {
  const { opcode, payload, fin = true, rsv = 0 } = frame
  const mask = frame.mask === undefined ? randomBytes(4) : frame.mask
  const bits = frame.lengthBits ?? (payload.length < 126 ? 7 : payload.length < 0x1_0000 ? 16 : 64)
  const extended = bits === 7 ? 0 : bits === 16 ? 2 : 8
  const header = Buffer.alloc(2 + extended + (mask === null ? 0 : 4))
  header[0] = (fin ? 0x80 : 0) | rsv | opcode
  header[1] = (mask === null ? 0 : 0x80) | (bits === 7 ? payload.length : bits === 16 ? 126 : 127)
  if (bits === 16) header.writeUInt16BE(payload.length, 2)
  if (bits === 64) header.writeBigUInt64BE(BigInt(payload.length), 2)
  if (mask === null) return Buffer.concat([header, payload])
  mask.copy(header, 2 + extended)
  const masked = Buffer.from(payload.map((byte, i) => byte ^ (mask[i & 3] as number)))
  return Buffer.concat([header, masked])
}

export interface ServerFrame {
  readonly fin: boolean
  readonly opcode: number
  readonly payload: Buffer
}

/** Parses the unmasked frames a server sends; returns the complete ones and how many bytes they took. */
export const parseServerFrames = (bytes: Buffer): { frames: Array<ServerFrame>; used: number } => {
  const frames: Array<ServerFrame> = []
  let offset = 0
  while (bytes.length - offset >= 2) {
    const first = bytes[offset] as number
    const second = bytes[offset + 1] as number
    if ((second & 0x80) !== 0) throw new Error("the server sent a masked frame")
    let length = second & 0x7f
    let start = offset + 2
    if (length === 126) {
      if (bytes.length < start + 2) break
      length = bytes.readUInt16BE(start)
      start += 2
    } else if (length === 127) {
      if (bytes.length < start + 8) break
      length = Number(bytes.readBigUInt64BE(start))
      start += 8
    }
    if (bytes.length < start + length) break
    frames.push({
      fin: (first & 0x80) !== 0,
      opcode: first & 0x0f,
      payload: bytes.subarray(start, start + length),
    })
    offset = start + length
  }
  return { frames, used: offset }
}
