// bufferutil (ws's native helper) ships no types; this is the part Pico uses.
declare module "bufferutil" {
  /** XORs `buffer` in place with the 4-byte `mask`, repeated. */
  export function unmask(buffer: Buffer, mask: Buffer): void
  const bufferutil: { readonly unmask: typeof unmask }
  export default bufferutil
}
