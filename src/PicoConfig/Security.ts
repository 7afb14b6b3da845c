import * as Setting from "./Setting.js"

const urlProblem = (text: string): string | undefined => {
  if (text === "") return undefined
  try {
    const url = new URL(text)
    return url.protocol === "https:" || url.protocol === "http:" ? undefined : "expected an http(s) URL"
  } catch {
    return "expected a URL such as https://idp.example.com/.well-known/jwks.json"
  }
}

/** JWT verification keys and claims for one port. `who` names the callers, for the help text. */
export const tokenSettings = (who: string) => ({
  tokenHmacSecretKey: Setting.secret(
    `HMAC key (HS256/384/512, 32+ characters) of ${who} tokens, or "file:PATH".`,
    "key",
  ),
  tokenRsaPublicKey: Setting.string(
    `PEM RSA public key (RS256/384/512) of ${who} tokens, or "file:PATH".`,
    "",
    "pem",
  ),
  tokenEcdsaPublicKey: Setting.string(
    `PEM EC public key (ES256/384/512) of ${who} tokens, or "file:PATH".`,
    "",
    "pem",
  ),
  jwksUrl: Setting.url(
    `JWKS URL of the keys of ${who} tokens (keys rotate); instead of static keys.`,
    "",
    urlProblem,
  ),
  jwksCacheTtl: Setting.duration("How long a fetched JWKS is used before it is fetched again.", "10m"),
  tokenAudience: Setting.string(`Required "aud" of ${who} tokens; not checked when empty.`),
  tokenIssuer: Setting.string(`Required "iss" of ${who} tokens; not checked when empty.`),
  tokenLeeway: Setting.duration("Clock skew tolerated when checking exp, nbf and iat.", "5s", {
    allowZero: true,
  }),
})

/** Serving one port over TLS. */
export const tlsSettings = (port: string) => ({
  certFile: Setting.string(
    `PEM certificate chain for TLS on the ${port} port; reloaded when it changes.`,
    "",
    "file",
  ),
  keyFile: Setting.string(
    `PEM private key of --${port}.tls.cert-file; reloaded when it changes.`,
    "",
    "file",
  ),
  clientCaFile: Setting.string(
    "PEM CA bundle; clients must then present a certificate it signed (mTLS).",
    "",
    "file",
  ),
})

export type TokenSettings = Setting.Resolved<ReturnType<typeof tokenSettings>>
export type TlsSettings = Setting.Resolved<ReturnType<typeof tlsSettings>>
