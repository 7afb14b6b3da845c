/** Cuts `bytes` at the given offsets (taken modulo its length + 1), into copies the consumer may own. */
export const split = (bytes: Buffer, cuts: ReadonlyArray<number>): Array<Buffer> => {
  const offsets = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b)
  const chunks: Array<Buffer> = []
  let start = 0
  for (const offset of [...offsets, bytes.length]) {
    chunks.push(Buffer.from(bytes.subarray(start, offset)))
    start = offset
  }
  return chunks
}

/** Whether `piece` is memory inside `chunk` (a view, not a copy). */
export const isViewOf = (piece: Buffer, chunk: Buffer): boolean =>
  piece.buffer === chunk.buffer &&
  piece.byteOffset >= chunk.byteOffset &&
  piece.byteOffset + piece.length <= chunk.byteOffset + chunk.length
