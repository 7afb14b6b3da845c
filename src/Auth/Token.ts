import { createPublicKey, type KeyObject } from "node:crypto"
import { Duration, Effect } from "effect"
import * as jose from "jose"

/** What a verified token allows: the endpoints it names (undefined: all) and when it stops being valid. */
export interface VerifiedToken {
  /** Endpoint ids from the `pico.endpoints` claim; undefined (claim absent or empty) means every endpoint. */
  readonly endpoints: ReadonlyArray<string> | undefined
  /**
   * Epoch milliseconds at which the token stops being accepted: `exp` plus the leeway, the same instant the
   * signature check refuses it from, so a session accepted near `exp` is not cut at once and reconnected.
   */
  readonly expiresAt: number | undefined
}

/** Why a token failed verification; `detail` is for logs only. */
export interface TokenFailure {
  readonly reason: "invalid token" | "expired token"
  readonly detail: string
}

export interface TokenVerifier {
  readonly verify: (token: string) => Effect.Effect<VerifiedToken, TokenFailure>
}

/** Key material, already read from files: PEM text for RSA/ECDSA, raw text for the HMAC secret. */
export interface TokenKeys {
  readonly hmacSecret?: string | undefined
  readonly rsaPublicKeyPem?: string | undefined
  readonly ecdsaPublicKeyPem?: string | undefined
  /** A JWKS document URL; cannot be combined with the static keys above. */
  readonly jwksUrl?: string | undefined
  /** How long a fetched JWKS is trusted before it is fetched again (default 10 minutes). */
  readonly jwksCacheTtl?: Duration.DurationInput
  readonly audience?: string | undefined
  readonly issuer?: string | undefined
  /** Clock skew tolerated for exp, nbf and iat. */
  readonly leeway: Duration.DurationInput
}

const hmacAlgorithms = ["HS256", "HS384", "HS512"]
const rsaAlgorithms = ["RS256", "RS384", "RS512"]
const ecdsaAlgorithms = ["ES256", "ES384", "ES512"]

/** A public key, checked to be of the expected type so an EC key cannot be configured as the RSA one. */
export const parsePublicKey = (pem: string, type: "rsa" | "ec"): KeyObject => {
  const key = createPublicKey(pem)
  if (key.asymmetricKeyType !== type) {
    throw new Error(
      `expected an ${type.toUpperCase()} public key, got ${key.asymmetricKeyType ?? "an unknown key"}`,
    )
  }
  return key
}

const isStringArray = (value: unknown): value is ReadonlyArray<string> =>
  Array.isArray(value) && value.every((item) => typeof item === "string")

/** The `pico` claim: `{"pico": {"endpoints": ["id", ...]}}`; anything else in it is malformed. */
const endpointsClaim = (payload: jose.JWTPayload): ReadonlyArray<string> | undefined | "malformed" => {
  const pico = payload.pico
  if (pico === undefined) return undefined
  if (typeof pico !== "object" || pico === null) return "malformed"
  const endpoints = (pico as { endpoints?: unknown }).endpoints
  if (endpoints === undefined) return undefined
  if (!isStringArray(endpoints)) return "malformed"
  return endpoints.length === 0 ? undefined : endpoints
}

const failure = (reason: TokenFailure["reason"], detail: string): TokenFailure => ({ reason, detail })

/**
 * Verifies JWTs with exactly the algorithm families of the configured keys: an HS256 token is refused when only
 * an RSA key is configured (so the public key can never be used as an HMAC secret), and `none` never verifies.
 */
export const makeVerifier = (keys: TokenKeys): TokenVerifier => {
  const leeway = Duration.toMillis(keys.leeway)
  const jwksCacheTtl = Duration.toMillis(keys.jwksCacheTtl ?? "10 minutes")
  const algorithms: Array<string> = []
  let resolveKey: jose.JWTVerifyGetKey
  if (keys.jwksUrl !== undefined) {
    algorithms.push(...rsaAlgorithms, ...ecdsaAlgorithms)
    resolveKey = jose.createRemoteJWKSet(new URL(keys.jwksUrl), {
      cacheMaxAge: jwksCacheTtl,
      // A token signed with a key rotated in since the last fetch triggers a refetch, at most this often.
      cooldownDuration: Math.min(30_000, jwksCacheTtl),
      timeoutDuration: 5_000,
    })
  } else {
    const hmac = keys.hmacSecret === undefined ? undefined : new TextEncoder().encode(keys.hmacSecret)
    const rsa = keys.rsaPublicKeyPem === undefined ? undefined : parsePublicKey(keys.rsaPublicKeyPem, "rsa")
    const ecdsa =
      keys.ecdsaPublicKeyPem === undefined ? undefined : parsePublicKey(keys.ecdsaPublicKeyPem, "ec")
    if (hmac !== undefined) algorithms.push(...hmacAlgorithms)
    if (rsa !== undefined) algorithms.push(...rsaAlgorithms)
    if (ecdsa !== undefined) algorithms.push(...ecdsaAlgorithms)
    resolveKey = (header) => {
      const alg = header.alg ?? ""
      const key = alg.startsWith("HS")
        ? hmac
        : alg.startsWith("RS")
          ? rsa
          : alg.startsWith("ES")
            ? ecdsa
            : undefined
      // jwtVerify has already refused algorithms outside `algorithms`, so a key is always there.
      if (key === undefined)
        throw new jose.errors.JOSEAlgNotAllowed(`"alg" (Algorithm) Header Parameter value not allowed`)
      return key
    }
  }
  const options: jose.JWTVerifyOptions = {
    algorithms,
    clockTolerance: leeway / 1000,
    ...(keys.audience === undefined ? {} : { audience: keys.audience }),
    ...(keys.issuer === undefined ? {} : { issuer: keys.issuer }),
  }

  return {
    verify: (token) =>
      Effect.tryPromise({
        try: () => jose.jwtVerify(token, resolveKey, options),
        catch: (error) =>
          error instanceof jose.errors.JWTExpired
            ? failure("expired token", error.message)
            : failure("invalid token", error instanceof Error ? error.message : String(error)),
      }).pipe(
        Effect.flatMap(({ payload }) => {
          // jose accepts an iat in the future; a token minted "later" is a clock or forgery problem either way.
          if (typeof payload.iat === "number" && payload.iat * 1000 > Date.now() + leeway) {
            return Effect.fail(failure("invalid token", "iat is in the future"))
          }
          const endpoints = endpointsClaim(payload)
          if (endpoints === "malformed") return Effect.fail(failure("invalid token", "malformed pico claim"))
          return Effect.succeed({
            endpoints,
            expiresAt: typeof payload.exp === "number" ? payload.exp * 1000 + leeway : undefined,
          })
        }),
      ),
  }
}
