import { Context, Effect, Layer, Schema } from "effect"

/** Why a token was refused; each reason has its own operator-facing message. */
export const AuthFailureReason = Schema.Literal(
  "missing authorization",
  "unsupported auth type",
  "invalid token",
  "expired token",
  "endpoint not permitted",
)

export class AuthError extends Schema.TaggedError<AuthError>()("AuthError", {
  reason: AuthFailureReason,
}) {
  override get message(): string {
    return this.reason
  }
}

/** What a verified upstream may do, and until when. */
export interface UpstreamGrant {
  /** Epoch millis at which the token expires and the session must end; undefined when it never does. */
  readonly expiresAt: number | undefined
}

/**
 * Decides whether a connecting upstream may register an endpoint. The allow-all layer is used when no keys are
 * configured.
 */
export class Auth extends Context.Tag("pico/Auth")<
  Auth,
  {
    /** `authorization` is the raw Authorization header of the WebSocket upgrade request. */
    readonly verifyUpstream: (
      authorization: string | undefined,
      endpointId: string,
    ) => Effect.Effect<UpstreamGrant, AuthError>
  }
>() {}

const unlimited: UpstreamGrant = { expiresAt: undefined }

/** Accepts every upstream: Pico's behaviour when no token keys are configured. */
export const layerAllowAll: Layer.Layer<Auth> = Layer.succeed(
  Auth,
  Auth.of({ verifyUpstream: () => Effect.succeed(unlimited) }),
)
