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
    `Secret key ${who} tokens are signed with (HS256, HS384, HS512). "file:PATH" reads it from a file.`,
  ),
  tokenRsaPublicKey: Setting.string(
    `PEM RSA public key verifying ${who} tokens (RS256, RS384, RS512). "file:PATH" reads it from a file.`,
  ),
  tokenEcdsaPublicKey: Setting.string(
    `PEM ECDSA public key verifying ${who} tokens (ES256, ES384, ES512). "file:PATH" reads it from a file.`,
  ),
  jwksUrl: Setting.checkedString(
    `URL of a JWKS document with the keys of ${who} tokens; fetched, cached and refetched for unknown key ids, ` +
      "so keys rotate without a restart. Cannot be combined with the static keys.",
    "",
    urlProblem,
    "url",
  ),
  jwksCacheTtl: Setting.duration("How long a fetched JWKS is trusted before it is fetched again.", "10m"),
  tokenAudience: Setting.string(`Required "aud" of ${who} tokens; not checked when empty.`),
  tokenIssuer: Setting.string(`Required "iss" of ${who} tokens; not checked when empty.`),
  tokenLeeway: Setting.duration("Clock skew tolerated when checking exp, nbf and iat.", "5s", {
    allowZero: true,
  }),
})

/** Serving one port over TLS. */
export const tlsSettings = (port: string) => ({
  certFile: Setting.string(
    `PEM certificate (chain) to serve the ${port} port over TLS. Reloaded when the file changes.`,
  ),
  keyFile: Setting.string(`PEM private key for --${port}.tls.cert-file. Reloaded when the file changes.`),
  clientCaFile: Setting.string(
    `PEM CA bundle: when set, clients of the ${port} port must present a certificate it signed (mTLS).`,
  ),
})

export type TokenSettings = Setting.Resolved<ReturnType<typeof tokenSettings>>
export type TlsSettings = Setting.Resolved<ReturnType<typeof tlsSettings>>
