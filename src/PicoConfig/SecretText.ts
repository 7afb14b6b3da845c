/**
 * How secrets are written in settings, kept free of heavy imports: `pico --help` loads the settings tables, and
 * with them this module, and nothing of jose or Effect's core.
 */

/** "file:PATH": the secret is the file's contents, so it need not sit on a command line. */
export const filePrefix = "file:"

/** A cluster key shorter than this is too easy to guess for a key that lets a packet rewrite the routes. */
export const MIN_SECRET_LENGTH = 32

/** Why a configured secret cannot be a cluster key; never quotes the secret itself. */
export const secretProblem = (secret: string): string | undefined =>
  secret.length < MIN_SECRET_LENGTH
    ? `must be at least ${MIN_SECRET_LENGTH} characters (make one with: openssl rand -base64 32)`
    : undefined
