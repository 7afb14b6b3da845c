import { readFile } from "node:fs/promises"
import { Effect } from "effect"
import { parsePublicKey, type TokenKeys } from "../Auth/Token.js"
import { type Keyring, makeKeyring } from "../ClusterKeys.js"
import { ConfigError } from "./ConfigError.js"
import { filePrefix, secretProblem } from "./SecretText.js"
import type { TlsSettings, TokenSettings } from "./Security.js"

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
    catch: unreadable(flag, path),
  }).pipe(Effect.map((text) => text.replace(/\r?\n$/, "")))
}

const unreadable = (flag: string, path: string) => (cause: unknown) =>
  new ConfigError({
    reason: "unreadable",
    message: `--${flag}: cannot read ${path}: ${(cause as Error).message}`,
    cause,
  })

/** A PEM file a flag names (a CA, certificate or key), read once; empty means not set. */
export const readPemFile = (path: string, flag: string): Effect.Effect<Buffer | undefined, ConfigError> =>
  path === ""
    ? Effect.succeed(undefined)
    : Effect.tryPromise({ try: () => readFile(path), catch: unreadable(flag, path) })

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
}

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
  return Effect.succeed({ certFile, keyFile, clientCaFile: clientCaFile === "" ? undefined : clientCaFile })
}
