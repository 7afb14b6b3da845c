import { X509Certificate } from "node:crypto"
import * as tls from "node:tls"
import { Effect } from "effect"
import { ConfigError } from "./ConfigError.js"

/** One PEM file of a TLS setup: its contents, and how an error names it (its flag, or what it is, and its path). */
export interface PemFile {
  readonly pem: Buffer
  readonly name: string
  readonly path: string
}

/** The files of one TLS setup; any may be absent. */
export interface TlsParts {
  readonly cert?: PemFile | undefined
  readonly key?: PemFile | undefined
  readonly ca?: PemFile | undefined
}

/** A CA bundle's first certificate: PEM, as Node's `ca` option takes it (DER parses, but would trust nothing). */
const firstPemCertificate = (pem: Buffer): X509Certificate => {
  if (!/-----BEGIN (TRUSTED )?CERTIFICATE-----/.test(pem.toString("latin1"))) throw new Error("not PEM")
  return new X509Certificate(pem)
}

const attempt = (file: PemFile, what: string, check: () => unknown): ConfigError | undefined => {
  try {
    check()
    return undefined
  } catch (cause) {
    // OpenSSL's reason only: never the file's contents, which may be a private key.
    return new ConfigError({
      reason: "unusable",
      message: `${file.name} ${file.path}: ${what} (${(cause as Error).message})`,
      cause,
    })
  }
}

/**
 * What is wrong with a certificate, key or CA file, if anything, before anything listens or connects with it.
 * Otherwise Node throws from inside a server's or a connection's constructor, saying nothing of which file is
 * wrong, and it takes a CA file with no certificate in it without a word.
 */
export const tlsProblem = ({ cert, key, ca }: TlsParts): ConfigError | undefined =>
  (cert && attempt(cert, "not a PEM certificate", () => tls.createSecureContext({ cert: cert.pem }))) ??
  (key && attempt(key, "not a PEM private key", () => tls.createSecureContext({ key: key.pem }))) ??
  (ca && attempt(ca, "no PEM certificate in it", () => firstPemCertificate(ca.pem))) ??
  (cert &&
    key &&
    attempt(key, `not the key of ${cert.name} ${cert.path}`, () =>
      tls.createSecureContext({ cert: cert.pem, key: key.pem }),
    ))

/** tlsProblem as an Effect: fails with the problem. */
export const checkTls = (parts: TlsParts): Effect.Effect<void, ConfigError> => {
  const problem = tlsProblem(parts)
  return problem === undefined ? Effect.void : Effect.fail(problem)
}
