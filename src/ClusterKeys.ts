import { hkdfSync } from "node:crypto"
import { Context, Layer } from "effect"

/** What a cluster key protects; each purpose gets its own subkey, so one use can never stand in for another. */
export type KeyPurpose = "gossip" | "forward"

export { MIN_SECRET_LENGTH, secretProblem } from "./PicoConfig/SecretText.js"

/**
 * The cluster's shared secrets, as memberlist's keyring: the first (primary) key signs and encrypts, every key
 * verifies and decrypts. Rotating is then three rolling restarts: add the new key second, make it first, drop the
 * old one.
 */
export interface Keyring {
  /** How many secrets are configured. */
  readonly size: number
  /** 32-byte subkeys for `purpose`, one per secret, the primary first. */
  readonly subkeys: (purpose: KeyPurpose) => ReadonlyArray<Buffer>
}

const salt = Buffer.from("pico cluster key v1")

/** A keyring from the configured secrets (already checked with `secretProblem`); at least one. */
export const makeKeyring = (secrets: ReadonlyArray<string>): Keyring => {
  const cache = new Map<KeyPurpose, ReadonlyArray<Buffer>>()
  return {
    size: secrets.length,
    subkeys: (purpose) => {
      let keys = cache.get(purpose)
      if (keys === undefined) {
        keys = secrets.map((secret) => Buffer.from(hkdfSync("sha256", secret, salt, purpose, 32)))
        cache.set(purpose, keys)
      }
      return keys
    },
  }
}

/**
 * The node's cluster keyring, or undefined when none is configured: gossip then runs unauthenticated and nothing a
 * peer says about itself in a forwarded request is trusted.
 */
export class ClusterKeys extends Context.Tag("pico/ClusterKeys")<
  ClusterKeys,
  { readonly keyring: Keyring | undefined }
>() {}

export const layer = (keyring: Keyring | undefined): Layer.Layer<ClusterKeys> =>
  Layer.succeed(ClusterKeys, ClusterKeys.of({ keyring }))
