import { generateKeyPairSync, type KeyObject } from "node:crypto"
import { describe, expect, it, vi } from "@effect/vitest"
import { Effect, Either, Layer, Schedule } from "effect"
import * as jose from "jose"
import { makeVerifier, type TokenKeys } from "../src/Auth/Token.js"
import { AuthError, type Guard, layer, tokenGuard } from "../src/Auth.js"
import { startHttpServer } from "./support/http.js"

const now = () => Math.floor(Date.now() / 1000)
const secret = "a-long-enough-hmac-secret-for-tests-0123456789"

const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 })
const otherRsa = generateKeyPairSync("rsa", { modulusLength: 2048 })
const ec = {
  ES256: generateKeyPairSync("ec", { namedCurve: "P-256" }),
  ES384: generateKeyPairSync("ec", { namedCurve: "P-384" }),
  ES512: generateKeyPairSync("ec", { namedCurve: "P-521" }),
}
const pem = (key: KeyObject) => key.export({ type: "spki", format: "pem" }).toString()

const sign = (
  alg: string,
  key: KeyObject | Uint8Array,
  claims: jose.JWTPayload = {},
  header: Partial<jose.JWTHeaderParameters> = {},
) => new jose.SignJWT(claims).setProtectedHeader({ alg, ...header }).sign(key)

const guard = (keys: Partial<TokenKeys>): Guard => tokenGuard(makeVerifier({ leeway: 0, ...keys }))

/** The reason a guard refuses with, or "ok". */
const outcome = (g: Guard, authorization: string | undefined, endpointId?: string) =>
  g.authorize(authorization, endpointId).pipe(
    Effect.as("ok"),
    Effect.catchAll((error: AuthError) => Effect.succeed(error.reason)),
  )

const bearer = (token: string) => `Bearer ${token}`
const hmacKey = new TextEncoder().encode(secret)

describe("token verification", () => {
  it.effect("accepts HS256/384/512 with the HMAC secret", () =>
    Effect.gen(function* () {
      const g = guard({ hmacSecret: secret })
      for (const alg of ["HS256", "HS384", "HS512"]) {
        const token = yield* Effect.promise(() => sign(alg, hmacKey, { exp: now() + 60 }))
        expect(yield* outcome(g, bearer(token))).toBe("ok")
      }
    }),
  )

  it.effect("accepts RS256/384/512 with the RSA public key", () =>
    Effect.gen(function* () {
      const g = guard({ rsaPublicKeyPem: pem(rsa.publicKey) })
      for (const alg of ["RS256", "RS384", "RS512"]) {
        const token = yield* Effect.promise(() => sign(alg, rsa.privateKey))
        expect(yield* outcome(g, bearer(token))).toBe("ok")
      }
    }),
  )

  it.effect("accepts ES256/384/512 with matching curves", () =>
    Effect.gen(function* () {
      for (const [alg, pair] of Object.entries(ec)) {
        const g = guard({ ecdsaPublicKeyPem: pem(pair.publicKey) })
        const token = yield* Effect.promise(() => sign(alg, pair.privateKey))
        expect(yield* outcome(g, bearer(token))).toBe("ok")
      }
    }),
  )

  it.effect("refuses signatures by the wrong key", () =>
    Effect.gen(function* () {
      const wrongSecret = yield* Effect.promise(() =>
        sign("HS256", new TextEncoder().encode("another-secret-0123456789-abcdef")),
      )
      expect(yield* outcome(guard({ hmacSecret: secret }), bearer(wrongSecret))).toBe("invalid token")
      const wrongRsa = yield* Effect.promise(() => sign("RS256", otherRsa.privateKey))
      expect(yield* outcome(guard({ rsaPublicKeyPem: pem(rsa.publicKey) }), bearer(wrongRsa))).toBe(
        "invalid token",
      )
      const wrongCurve = yield* Effect.promise(() => sign("ES256", ec.ES256.privateKey))
      expect(yield* outcome(guard({ ecdsaPublicKeyPem: pem(ec.ES384.publicKey) }), bearer(wrongCurve))).toBe(
        "invalid token",
      )
    }),
  )

  it.effect("refuses algorithm confusion and unsigned tokens", () =>
    Effect.gen(function* () {
      const g = guard({ rsaPublicKeyPem: pem(rsa.publicKey) })
      // The classic attack: HS256 "signed" with the server's RSA public key as the HMAC secret.
      const confused = yield* Effect.promise(() =>
        sign("HS256", new TextEncoder().encode(pem(rsa.publicKey))),
      )
      expect(yield* outcome(g, bearer(confused))).toBe("invalid token")
      // Refused for its algorithm, before any key is tried.
      expect(
        yield* makeVerifier({ leeway: 0, rsaPublicKeyPem: pem(rsa.publicKey) })
          .verify(confused)
          .pipe(Effect.flip),
      ).toEqual({
        reason: "invalid token",
        detail: '"alg" (Algorithm) Header Parameter value not allowed',
      })
      const unsigned = new jose.UnsecuredJWT({ exp: now() + 60 }).encode()
      expect(yield* outcome(g, bearer(unsigned))).toBe("invalid token")
      expect(yield* outcome(guard({ hmacSecret: secret }), bearer(unsigned))).toBe("invalid token")
      const rsOnlyHmacGuard = yield* Effect.promise(() => sign("RS256", rsa.privateKey))
      expect(yield* outcome(guard({ hmacSecret: secret }), bearer(rsOnlyHmacGuard))).toBe("invalid token")
    }),
  )

  it.effect("accepts every configured family at once, and only those", () =>
    Effect.gen(function* () {
      const g = guard({ hmacSecret: secret, rsaPublicKeyPem: pem(rsa.publicKey) })
      expect(yield* outcome(g, bearer(yield* Effect.promise(() => sign("HS384", hmacKey))))).toBe("ok")
      expect(yield* outcome(g, bearer(yield* Effect.promise(() => sign("RS512", rsa.privateKey))))).toBe("ok")
      expect(yield* outcome(g, bearer(yield* Effect.promise(() => sign("ES256", ec.ES256.privateKey))))).toBe(
        "invalid token",
      )
    }),
  )

  it.effect("checks exp, nbf and iat with the leeway", () =>
    Effect.gen(function* () {
      const strict = guard({ hmacSecret: secret })
      const lenient = guard({ hmacSecret: secret, leeway: 30_000 })
      const expired = yield* Effect.promise(() => sign("HS256", hmacKey, { exp: now() - 10 }))
      expect(yield* outcome(strict, bearer(expired))).toBe("expired token")
      expect(yield* outcome(lenient, bearer(expired))).toBe("ok")
      const longExpired = yield* Effect.promise(() => sign("HS256", hmacKey, { exp: now() - 60 }))
      expect(yield* outcome(lenient, bearer(longExpired))).toBe("expired token")
      const notYet = yield* Effect.promise(() => sign("HS256", hmacKey, { nbf: now() + 10 }))
      expect(yield* outcome(strict, bearer(notYet))).toBe("invalid token")
      expect(yield* outcome(lenient, bearer(notYet))).toBe("ok")
      const fromTheFuture = yield* Effect.promise(() => sign("HS256", hmacKey, { iat: now() + 10 }))
      expect(yield* outcome(strict, bearer(fromTheFuture))).toBe("invalid token")
      expect(yield* outcome(lenient, bearer(fromTheFuture))).toBe("ok")
    }),
  )

  it.effect("checks aud and iss only when configured", () =>
    Effect.gen(function* () {
      const token = yield* Effect.promise(() => sign("HS256", hmacKey, { aud: "bar", iss: "bar" }))
      expect(yield* outcome(guard({ hmacSecret: secret }), bearer(token))).toBe("ok")
      expect(yield* outcome(guard({ hmacSecret: secret, audience: "foo" }), bearer(token))).toBe(
        "invalid token",
      )
      expect(yield* outcome(guard({ hmacSecret: secret, issuer: "foo" }), bearer(token))).toBe(
        "invalid token",
      )
      expect(
        yield* outcome(guard({ hmacSecret: secret, audience: "bar", issuer: "bar" }), bearer(token)),
      ).toBe("ok")
      const noAud = yield* Effect.promise(() => sign("HS256", hmacKey))
      expect(yield* outcome(guard({ hmacSecret: secret, audience: "bar" }), bearer(noAud))).toBe(
        "invalid token",
      )
    }),
  )

  it.effect("limits endpoints with the pico claim", () =>
    Effect.gen(function* () {
      const g = guard({ hmacSecret: secret })
      const limited = yield* Effect.promise(() => sign("HS256", hmacKey, { pico: { endpoints: ["a", "b"] } }))
      expect(yield* outcome(g, bearer(limited), "a")).toBe("ok")
      expect(yield* outcome(g, bearer(limited), "c")).toBe("endpoint not permitted")
      const empty = yield* Effect.promise(() => sign("HS256", hmacKey, { pico: { endpoints: [] } }))
      expect(yield* outcome(g, bearer(empty), "anything")).toBe("ok")
      const noEndpoints = yield* Effect.promise(() => sign("HS256", hmacKey, { pico: {} }))
      expect(yield* outcome(g, bearer(noEndpoints), "anything")).toBe("ok")
      for (const pico of [{ endpoints: "a" }, { endpoints: ["a", 1] }, "a", null]) {
        const malformed = yield* Effect.promise(() => sign("HS256", hmacKey, { pico }))
        expect(yield* outcome(g, bearer(malformed), "a"), JSON.stringify(pico)).toBe("invalid token")
      }
    }),
  )

  it.effect("parses the Authorization header", () =>
    Effect.gen(function* () {
      const g = guard({ hmacSecret: secret })
      expect(yield* outcome(g, undefined)).toBe("missing authorization")
      expect(yield* outcome(g, "")).toBe("missing authorization")
      expect(yield* outcome(g, "Bearer")).toBe("missing authorization")
      expect(yield* outcome(g, "Basic dXNlcjpwYXNz")).toBe("unsupported auth type")
      // Auth schemes are case-insensitive (RFC 9110 §11.1): "bearer" is Bearer, and "abc" no token.
      expect(yield* outcome(g, "bearer abc")).toBe("invalid token")
      expect(yield* outcome(g, "Bearer not-a-jwt")).toBe("invalid token")
    }),
  )

  /** A JWKS endpoint serving `keys` (set by the test) and two ES256 keys with a token each, kid "one" and "two". */
  const jwksServer = Effect.gen(function* () {
    const first = generateKeyPairSync("ec", { namedCurve: "P-256" })
    const second = generateKeyPairSync("ec", { namedCurve: "P-256" })
    const jwk = (key: KeyObject, kid: string) => ({
      ...key.export({ format: "jwk" }),
      kid,
      alg: "ES256",
      use: "sig",
    })
    const served = { keys: [jwk(first.publicKey, "one")] }
    const server = yield* Effect.acquireRelease(
      Effect.promise(() =>
        startHttpServer((_req, res) => {
          res.setHeader("content-type", "application/json")
          res.end(JSON.stringify({ keys: served.keys }))
        }),
      ),
      (server) => Effect.promise(server.close),
    )
    return {
      url: `http://127.0.0.1:${server.port}/jwks.json`,
      rotate: () => {
        served.keys = [jwk(second.publicKey, "two")]
      },
      remove: () => {
        served.keys = []
      },
      one: bearer(yield* Effect.promise(() => sign("ES256", first.privateKey, {}, { kid: "one" }))),
      two: bearer(yield* Effect.promise(() => sign("ES256", second.privateKey, {}, { kid: "two" }))),
    }
  })

  it.live("fetches keys from a JWKS URL, picks up a rotated key and drops a removed one", () =>
    Effect.gen(function* () {
      const jwks = yield* jwksServer
      const g = guard({ jwksUrl: jwks.url, jwksCacheTtl: 50 })
      expect(yield* outcome(g, jwks.one)).toBe("ok")

      jwks.rotate()
      const two = jwks.two
      const rotated = yield* outcome(g, two).pipe(
        Effect.filterOrFail((result) => result === "ok"),
        Effect.retry(Schedule.spaced("20 millis")),
        Effect.timeout("5 seconds"),
      )
      expect(rotated).toBe("ok")
      // A key removed from the set stops verifying once the cached set is older than the TTL.
      jwks.remove()
      const revoked = yield* outcome(g, two).pipe(
        Effect.filterOrFail((result) => result !== "ok"),
        Effect.retry(Schedule.spaced("20 millis")),
        Effect.timeout("5 seconds"),
      )
      expect(revoked).toBe("invalid token")
      // HMAC tokens never verify against a JWKS.
      expect(yield* outcome(g, bearer(yield* Effect.promise(() => sign("HS256", hmacKey))))).toBe(
        "invalid token",
      )
    }).pipe(Effect.scoped),
  )

  it.live("refetches a fresh JWKS for a key it lacks, but at most every 30 seconds", () =>
    Effect.gen(function* () {
      const start = 1_800_000_000_000
      vi.useFakeTimers({ toFake: ["Date"], now: start })
      yield* Effect.addFinalizer(() => Effect.sync(() => vi.useRealTimers()))
      const jwks = yield* jwksServer
      // The default TTL: the set fetched now stays fresh for 10 minutes.
      const g = guard({ jwksUrl: jwks.url })
      expect(yield* outcome(g, jwks.one)).toBe("ok")
      jwks.rotate()
      vi.setSystemTime(start + 29_000)
      expect(yield* outcome(g, jwks.two)).toBe("invalid token")
      vi.setSystemTime(start + 31_000)
      expect(yield* outcome(g, jwks.two)).toBe("ok")
    }).pipe(Effect.scoped),
  )

  it("refuses an EC key configured as the RSA key, and the other way round", () => {
    expect(() => makeVerifier({ leeway: 0, rsaPublicKeyPem: pem(ec.ES256.publicKey) })).toThrow(
      "expected an RSA public key, got ec",
    )
    expect(() => makeVerifier({ leeway: 0, ecdsaPublicKeyPem: pem(rsa.publicKey) })).toThrow(
      "expected an EC public key, got rsa",
    )
  })

  describe("a verified token", () => {
    const verify = (token: string, leeway = 0) =>
      makeVerifier({ hmacSecret: secret, leeway }).verify(token).pipe(Effect.either)

    it.effect("grants its endpoints until exp plus the leeway", () =>
      Effect.gen(function* () {
        const exp = now() + 60
        const token = yield* Effect.promise(() => sign("HS256", hmacKey, { exp, pico: { endpoints: ["a"] } }))
        expect(yield* verify(token, 5_000)).toEqual(
          Either.right({ endpoints: ["a"], expiresAt: exp * 1000 + 5_000 }),
        )
        const forever = yield* Effect.promise(() => sign("HS256", hmacKey))
        expect(yield* verify(forever)).toEqual(Either.right({ endpoints: undefined, expiresAt: undefined }))
      }),
    )

    it.effect("is refused with a detail for the log", () =>
      Effect.gen(function* () {
        const future = yield* Effect.promise(() => sign("HS256", hmacKey, { iat: now() + 10 }))
        expect(yield* verify(future)).toEqual(
          Either.left({ reason: "invalid token", detail: "iat is in the future" }),
        )
        const malformed = yield* Effect.promise(() => sign("HS256", hmacKey, { pico: "a" }))
        expect(yield* verify(malformed)).toEqual(
          Either.left({ reason: "invalid token", detail: "malformed pico claim" }),
        )
      }),
    )

    it.effect("may have been issued this very millisecond", () =>
      Effect.gen(function* () {
        vi.useFakeTimers({ toFake: ["Date"], now: 1_800_000_000_000 })
        yield* Effect.addFinalizer(() => Effect.sync(() => vi.useRealTimers()))
        const token = yield* Effect.promise(() => sign("HS256", hmacKey, { iat: 1_800_000_000 }))
        expect(Either.isRight(yield* verify(token))).toBe(true)
      }).pipe(Effect.scoped),
    )
  })

  it("AuthError messages are the client-facing reasons", () => {
    expect(new AuthError({ reason: "expired token", detail: "exp 123" }).message).toBe("expired token")
  })
})

describe("Auth.layer", () => {
  it.effect("fails with a ConfigError naming the problem, not a throw, when a key cannot be used", () =>
    Effect.gen(function* () {
      const built = yield* Layer.build(layer({ upstream: { rsaPublicKeyPem: "not a key", leeway: 0 } })).pipe(
        Effect.scoped,
        Effect.flip,
      )
      expect(built._tag).toBe("ConfigError")
      expect(built.message).toMatch(/^token keys: /)
    }),
  )
})
