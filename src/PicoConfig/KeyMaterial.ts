import { readFile } from "node:fs/promises"
import { Effect } from "effect"
import { parsePublicKey, type TokenKeys } from "../Auth/Token.js"
import { type Keyring, makeKeyring } from "../ClusterKeys.js"
import { describeSystemError } from "../internal/SystemError.js"
import { ConfigError } from "./ConfigError.js"
import { filePrefix, secretProblem } from "./SecretText.js"
import type { TlsSettings, TokenSettings } from "./Security.js"
import { checkTls, type PemFile } from "./TlsCheck.js"

/**
 * A setting's value, or the contents of the file it names with "file:PATH" (so keys and tokens need not sit on
 * a command line, where every user of the machine can read them). Empty means not set.
 */
export const readSecretValue = (
  value: string,
  flag: string,
): Effect.Effect<string | undefined, ConfigError> => {
  if (value === "") return Effect.succeed(undefined)
  if (!value.startsWith(filePrefix)) return Effect.succeed(value)
  const path = value.slice(filePrefix.length)
  return Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: unreadable(`--${flag}`, path),
  }).pipe(Effect.map((text) => text.replace(/\r?\n$/, "")))
}

const unreadable = (name: string, path: string) => (cause: unknown) =>
  new ConfigError({
    reason: "unreadable",
    message: `${name}: cannot read ${path}: ${describeSystemError(cause)}`,
    cause,
  })

/** A PEM file, read once, with how errors name it (a flag, or what the file is). */
export const readNamedPem = (path: string, name: string): Effect.Effect<PemFile, ConfigError> =>
  Effect.tryPromise({
    try: async () => ({ pem: await readFile(path), name, path }),
    catch: unreadable(name, path),
  })

/** A PEM file a flag names (a CA, certificate or key), read once; empty means not set. */
export const readPemFile = (path: string, flag: string): Effect.Effect<PemFile | undefined, ConfigError> =>
  path === "" ? Effect.succeed(undefined) : readNamedPem(path, `--${flag}`)

/** A CA file a flag names, read once and checked to hold a certificate; empty means not set. */
export const readCaFile = (path: string, flag: string): Effect.Effect<Buffer | undefined, ConfigError> =>
  readPemFile(path, flag).pipe(
    Effect.tap((ca) => checkTls({ ca })),
    Effect.map((ca) => ca?.pem),
  )

const checkPublicKey = (pem: string | undefined, type: "rsa" | "ec", flag: string) =>
  Effect.try({
    try: () => pem !== undefined && parsePublicKey(pem, type),
    // Never echo the value: say only what is wrong with it.
    catch: (cause) =>
      new ConfigError({
        reason: "unusable",
        message: `--${flag}: not a usable public key: ${(cause as Error).message}`,
        cause,
      }),
  })

/**
 * Reads and checks one port's token keys; undefined when none are configured (the port is open). `prefix` is the
 * flag prefix, e.g. "auth" or "proxy.auth".
 */
export const loadTokenKeys = (
  settings: TokenSettings,
  prefix: string,
): Effect.Effect<TokenKeys | undefined, ConfigError> =>
  Effect.gen(function* () {
    const hmacSecret = yield* readSecretValue(settings.tokenHmacSecretKey, `${prefix}.token-hmac-secret-key`)
    const rsaPublicKeyPem = yield* readSecretValue(
      settings.tokenRsaPublicKey,
      `${prefix}.token-rsa-public-key`,
    )
    const ecdsaPublicKeyPem = yield* readSecretValue(
      settings.tokenEcdsaPublicKey,
      `${prefix}.token-ecdsa-public-key`,
    )
    const jwksUrl = settings.jwksUrl === "" ? undefined : settings.jwksUrl
    const staticKeys = [
      [hmacSecret, "token-hmac-secret-key"],
      [rsaPublicKeyPem, "token-rsa-public-key"],
      [ecdsaPublicKeyPem, "token-ecdsa-public-key"],
    ].filter(([value]) => value !== undefined)
    if (jwksUrl !== undefined && staticKeys.length > 0) {
      return yield* new ConfigError({
        reason: "invalid",
        message: `--${prefix}.jwks-url cannot be combined with --${prefix}.${staticKeys[0]?.[1]}: use one or the other`,
      })
    }
    if (jwksUrl === undefined && staticKeys.length === 0) return undefined
    // RFC 7518 §3.2: an HMAC key at least as long as the hash (32 bytes for HS256); shorter is guessable offline
    // from any one token. An empty file would otherwise start a node that refuses every token.
    const hmacProblem = hmacSecret === undefined ? undefined : secretProblem(hmacSecret)
    if (hmacProblem !== undefined) {
      return yield* new ConfigError({
        reason: "invalid",
        message: `--${prefix}.token-hmac-secret-key: invalid value (redacted): ${hmacProblem}`,
      })
    }
    yield* checkPublicKey(rsaPublicKeyPem, "rsa", `${prefix}.token-rsa-public-key`)
    yield* checkPublicKey(ecdsaPublicKeyPem, "ec", `${prefix}.token-ecdsa-public-key`)
    return {
      hmacSecret,
      rsaPublicKeyPem,
      ecdsaPublicKeyPem,
      jwksUrl,
      jwksCacheTtl: settings.jwksCacheTtl,
      audience: settings.tokenAudience === "" ? undefined : settings.tokenAudience,
      issuer: settings.tokenIssuer === "" ? undefined : settings.tokenIssuer,
      leeway: settings.tokenLeeway,
    }
  })

/**
 * The cluster keyring from the configured keys (inline values were checked when the config was loaded), with
 * each "file:PATH" replaced by the keys it holds, one per line; undefined when none are configured. Errors name
 * the flag and the file's line, never a key.
 */
export const loadClusterKeys = (
  values: ReadonlyArray<string>,
  flag: string,
): Effect.Effect<Keyring | undefined, ConfigError> =>
  Effect.gen(function* () {
    const secrets: Array<string> = []
    for (const value of values) {
      if (!value.startsWith(filePrefix)) {
        secrets.push(value)
        continue
      }
      const path = value.slice(filePrefix.length)
      const lines = ((yield* readSecretValue(value, flag)) ?? "").split(/\r?\n/).map((line) => line.trim())
      const keys = lines.filter((line) => line !== "")
      if (keys.length === 0)
        return yield* new ConfigError({ reason: "invalid", message: `--${flag}: ${path} holds no key` })
      for (const [i, line] of lines.entries()) {
        const problem = line === "" ? undefined : secretProblem(line)
        if (problem !== undefined)
          return yield* new ConfigError({
            reason: "invalid",
            message: `--${flag}: ${path} line ${i + 1}: ${problem}`,
          })
      }
      secrets.push(...keys)
    }
    return secrets.length === 0 ? undefined : makeKeyring(secrets)
  })

/** The files a TLS listener serves, once checked to come as a pair. */
export interface TlsFiles {
  readonly certFile: string
  readonly keyFile: string
  readonly clientCaFile: string | undefined
  /** The flags' prefix ("proxy.tls"), which errors name; without it they say what the file is. */
  readonly flagPrefix?: string | undefined
}

/** How an error names one of a listener's TLS files: by its flag when known. */
const tlsFileName = (files: TlsFiles, which: "cert-file" | "key-file" | "client-ca-file"): string =>
  files.flagPrefix === undefined ? `TLS ${which}` : `--${files.flagPrefix}.${which}`

/** What a TLS listener serves: its certificate and key, and the CA its clients' certificates must chain to. */
export interface TlsMaterial {
  readonly cert: Buffer
  readonly key: Buffer
  readonly ca: Buffer | undefined
}

/** The files' contents, checked to be a certificate, its key and a CA (TlsCheck.ts), or why they are not. */
export const readTlsFiles = (files: TlsFiles): Effect.Effect<TlsMaterial, ConfigError> =>
  Effect.gen(function* () {
    const cert = yield* readNamedPem(files.certFile, tlsFileName(files, "cert-file"))
    const key = yield* readNamedPem(files.keyFile, tlsFileName(files, "key-file"))
    const ca =
      files.clientCaFile === undefined
        ? undefined
        : yield* readNamedPem(files.clientCaFile, tlsFileName(files, "client-ca-file"))
    yield* checkTls({ cert, key, ca })
    return { cert: cert.pem, key: key.pem, ca: ca?.pem }
  })

/** A port's TLS files; undefined when it serves plain HTTP. `prefix` is e.g. "proxy.tls". */
export const tlsFiles = (
  settings: TlsSettings,
  prefix: string,
): Effect.Effect<TlsFiles | undefined, ConfigError> => {
  const { certFile, keyFile, clientCaFile } = settings
  if (certFile === "" && keyFile === "") {
    return clientCaFile === ""
      ? Effect.succeed(undefined)
      : Effect.fail(
          new ConfigError({
            reason: "invalid",
            message: `--${prefix}.client-ca-file needs --${prefix}.cert-file and --${prefix}.key-file`,
          }),
        )
  }
  if (certFile === "" || keyFile === "") {
    const missing = certFile === "" ? "cert-file" : "key-file"
    return Effect.fail(
      new ConfigError({
        reason: "invalid",
        message: `--${prefix}.${missing} is required with --${prefix}.${missing === "cert-file" ? "key-file" : "cert-file"}`,
      }),
    )
  }
  return Effect.succeed({
    certFile,
    keyFile,
    clientCaFile: clientCaFile === "" ? undefined : clientCaFile,
    flagPrefix: prefix,
  })
}
