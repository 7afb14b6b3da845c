/**
 * How secrets are written in settings, kept free of heavy imports: `pico --help` loads the settings tables, and
 * with them this module, and nothing of jose or Effect's core.
 */

/** "file:PATH": the secret is the file's contents, so it need not sit on a command line. */
export const filePrefix = "file:"

/**
 * A key shorter than this is too easy to guess: a cluster key lets a packet rewrite the routes, and a token's
 * HMAC key (RFC 7518 §3.2 asks for one as long as the hash) can be searched for offline from any one token.
 */
export const MIN_SECRET_LENGTH = 32

/** Why a configured secret cannot be a key (of the cluster, or a token's HMAC key); never quotes the secret. */
export const secretProblem = (secret: string): string | undefined =>
  secret.length < MIN_SECRET_LENGTH
    ? `must be at least ${MIN_SECRET_LENGTH} characters (make one with: openssl rand -base64 32)`
    : undefined
