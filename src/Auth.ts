import { Context, Effect, Layer, Schema } from "effect"
import { makeVerifier, type TokenKeys, type TokenVerifier } from "./Auth/Token.js"
import { countAuthFailure } from "./Metrics.js"
import { ConfigError } from "./PicoConfig/ConfigError.js"

export { parsePublicKey, type TokenKeys, type VerifiedToken } from "./Auth/Token.js"

/** Why a request was refused; each reason is also the `error` the client gets with its 401. */
export const AuthFailureReason = Schema.Literal(
  "missing authorization",
  "unsupported auth type",
  "invalid token",
  "expired token",
  "endpoint not permitted",
)

export class AuthError extends Schema.TaggedError<AuthError>()("AuthError", {
  reason: AuthFailureReason,
  /** What exactly was wrong, for the log line; never sent to the client. */
  detail: Schema.optional(Schema.String),
}) {
  override get message(): string {
    return this.reason
  }
}

/** What a verified caller may do, and until when. */
export interface Grant {
  /** Epoch millis from which the token is refused (an upstream's session is then ended); undefined: never. */
  readonly expiresAt: number | undefined
}

/** Checks one port's credentials: the raw Authorization-style header value and, optionally, the endpoint asked for. */
export interface Guard {
  readonly authorize: (
    authorization: string | undefined,
    endpointId?: string,
  ) => Effect.Effect<Grant, AuthError>
}

/**
 * Who may use which port. `upstream` always exists (allow-all when no keys are configured); `proxy` and `admin`
 * are undefined when those ports are open, so their hot paths can skip authentication entirely.
 */
export class Auth extends Context.Tag("pico/Auth")<
  Auth,
  {
    readonly upstream: Guard
    readonly proxy: Guard | undefined
    readonly admin: Guard | undefined
  }
>() {}

const unlimited: Grant = { expiresAt: undefined }

/** Lets everyone in: Pico's behaviour for a port without keys. */
export const allowAll: Guard = { authorize: () => Effect.succeed(unlimited) }

/** "Bearer <token>"; the scheme is case-insensitive, as every HTTP auth scheme is (RFC 9110 §11.1). */
const bearerToken = (authorization: string | undefined): Effect.Effect<string, AuthError> => {
  if (authorization === undefined || authorization === "") {
    return Effect.fail(new AuthError({ reason: "missing authorization" }))
  }
  const space = authorization.indexOf(" ")
  if (space < 0) return Effect.fail(new AuthError({ reason: "missing authorization" }))
  if (authorization.slice(0, space).toLowerCase() !== "bearer")
    return Effect.fail(new AuthError({ reason: "unsupported auth type" }))
  return Effect.succeed(authorization.slice(space + 1).trim())
}

/** A guard that requires a valid JWT whose `pico.endpoints` claim (if any) names the endpoint asked for. */
export const tokenGuard = (verifier: TokenVerifier): Guard => ({
  authorize: (authorization, endpointId) =>
    bearerToken(authorization).pipe(
      Effect.flatMap((token) =>
        verifier.verify(token).pipe(Effect.mapError((failure) => new AuthError(failure))),
      ),
      Effect.flatMap((verified) =>
        endpointId !== undefined &&
        verified.endpoints !== undefined &&
        !verified.endpoints.includes(endpointId)
          ? Effect.fail(
              new AuthError({
                reason: "endpoint not permitted",
                detail: `token allows ${verified.endpoints.join(", ")}`,
              }),
            )
          : Effect.succeed({ expiresAt: verified.expiresAt }),
      ),
    ),
})

/** Every port open: the default when no keys are configured anywhere. */
export const layerAllowAll: Layer.Layer<Auth> = Layer.succeed(
  Auth,
  Auth.of({ upstream: allowAll, proxy: undefined, admin: undefined }),
)

/** Token keys per port; a port without keys is open. */
export interface AuthKeys {
  readonly upstream?: TokenKeys | undefined
  readonly proxy?: TokenKeys | undefined
  readonly admin?: TokenKeys | undefined
}

type Port = keyof AuthKeys

/** Counts the guard's refusals in the metrics, by port and reason. */
const counted = (port: Port, guard: Guard): Guard => ({
  authorize: (authorization, endpointId) =>
    Effect.tapError(guard.authorize(authorization, endpointId), (error) =>
      countAuthFailure(port, error.reason),
    ),
})

const guardFor = (port: Port, keys: AuthKeys): Guard | undefined => {
  const portKeys = keys[port]
  return portKeys === undefined ? undefined : counted(port, tokenGuard(makeVerifier(portKeys)))
}

/** JWT verification (jose) on the ports that have keys; unusable key material fails the layer with ConfigError. */
export const layer = (keys: AuthKeys): Layer.Layer<Auth, ConfigError> =>
  Layer.effect(
    Auth,
    Effect.try({
      try: () =>
        Auth.of({
          upstream: guardFor("upstream", keys) ?? allowAll,
          proxy: guardFor("proxy", keys),
          admin: guardFor("admin", keys),
        }),
      catch: (cause) =>
        new ConfigError({
          reason: "unusable",
          message: `token keys: ${cause instanceof Error ? cause.message : String(cause)}`,
          cause,
        }),
    }),
  )
