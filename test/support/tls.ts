import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export interface Certificates {
  readonly dir: string
  readonly caFile: string
  readonly ca: Buffer
  /** A certificate for localhost and 127.0.0.1, signed by the CA. */
  readonly serverCert: string
  readonly serverKey: string
  /** A second server certificate (another serial), for rotation tests. */
  readonly otherServerCert: string
  readonly otherServerKey: string
  /** A client certificate signed by the CA, for mTLS. */
  readonly clientCert: string
  readonly clientKey: string
  /** A node's certificate for localhost and 127.0.0.1, good as a server's and as a client's (node-to-node mTLS). */
  readonly nodeCert: string
  readonly nodeKey: string
}

const openssl = (cwd: string, ...args: ReadonlyArray<string>) =>
  execFileSync("openssl", args, { cwd, stdio: "pipe" })

const signed = (dir: string, name: string, subject: string, extension: string) => {
  openssl(
    dir,
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    subject,
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
  )
  writeFileSync(join(dir, `${name}.ext`), extension)
  openssl(
    dir,
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    `${name}.ext`,
    "-out",
    `${name}.crt`,
  )
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) }
}

/** A throwaway CA with server and client certificates, made with the openssl CLI (as docs/security.md shows). */
export const makeCertificates = (): Certificates => {
  const dir = mkdtempSync(join(tmpdir(), "pico-tls-"))
  openssl(
    dir,
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=pico test CA",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
  )
  const serverExt = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
  const server = signed(dir, "server", "/CN=localhost", serverExt)
  const other = signed(dir, "other", "/CN=localhost", serverExt)
  const client = signed(dir, "client", "/CN=pico agent", "extendedKeyUsage=clientAuth\n")
  const node = signed(
    dir,
    "node",
    "/CN=localhost",
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
  )
  return {
    dir,
    caFile: join(dir, "ca.pem"),
    ca: readFileSync(join(dir, "ca.pem")),
    serverCert: server.cert,
    serverKey: server.key,
    otherServerCert: other.cert,
    otherServerKey: other.key,
    clientCert: client.cert,
    clientKey: client.key,
    nodeCert: node.cert,
    nodeKey: node.key,
  }
}
