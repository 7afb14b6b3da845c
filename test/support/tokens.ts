import { randomBytes } from "node:crypto"
import * as jose from "jose"

export const hmacSecret = "test-hmac-secret-that-is-long-enough-0123456789"

/** An HS256 token signed with `hmacSecret`; `expiresIn` in seconds (negative: already expired). */
export const hmacToken = (claims: jose.JWTPayload = {}, expiresIn = 3600): Promise<string> =>
  new jose.SignJWT(claims)
    .setProtectedHeader({ alg: "HS256" })
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + expiresIn)
    .sign(new TextEncoder().encode(hmacSecret))

/** A fresh cluster key, as `openssl rand -base64 32` makes one (for --gossip.secret-key). */
export const newClusterKey = (): string => randomBytes(32).toString("base64")
