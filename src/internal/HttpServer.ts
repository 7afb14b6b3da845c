import { stat } from "node:fs/promises"
import * as http from "node:http"
import * as https from "node:https"
import { Duration, Effect, Schedule, type Scope } from "effect"
import type { ConfigError } from "../PicoConfig/ConfigError.js"
import { readTlsFiles, type TlsFiles, type TlsMaterial } from "../PicoConfig/KeyMaterial.js"

/** A plain or TLS HTTP server: both raise the same events and have the same connection methods. */
export type HttpServer = http.Server | https.Server

/** How often TLS files are checked for rotation (a Kubernetes secret update, certbot renewal, ...). */
const RELOAD_CHECK_INTERVAL = Duration.seconds(2)

/** A fingerprint of the files' state; a rotation changes it. */
const filesVersion = (files: TlsFiles) =>
  Effect.promise(() =>
    Promise.all(
      [files.certFile, files.keyFile, files.clientCaFile].map((path) =>
        path === undefined
          ? ""
          : stat(path).then(
              (info) => `${info.mtimeMs}:${info.size}:${info.ino}`,
              () => "missing",
            ),
      ),
    ).then((parts) => parts.join("|")),
  )

/**
 * Reads a new connection's peer address as early as it can be read: Node asks the kernel only when the address is
 * first wanted, and keeps it from then on; once the client has reset the connection there is none to read, though
 * a request it sent before may still be parsed. (One reset while still in the accept queue has none even here:
 * the proxy refuses such a request, see Proxy.ts.)
 */
const rememberPeer = (socket: { readonly remoteAddress?: string | undefined }): void => {
  void socket.remoteAddress
}

const secureContext = ({ cert, key, ca }: TlsMaterial) => ({ cert, key, ...(ca === undefined ? {} : { ca }) })

/**
 * Creates the server for a listener: plain HTTP, or TLS when `tls` is given, with client certificates required
 * when it has a CA. Certificate files are watched for the scope's lifetime and swapped in without a restart; a
 * rotation that fails to load (a half-written file) keeps the previous certificate and is retried.
 */
export const makeHttpServer = (
  tls: TlsFiles | undefined,
  options: http.ServerOptions,
  subsystem: string,
): Effect.Effect<HttpServer, ConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    if (tls === undefined) return http.createServer(options).on("connection", rememberPeer)
    const material = yield* readTlsFiles(tls)
    const requireClientCert = material.ca !== undefined
    const server = https.createServer({
      ...options,
      // A connection still in its TLS handshake is not HTTP yet, so the header timeout does not reach it.
      ...(options.headersTimeout === undefined ? {} : { handshakeTimeout: options.headersTimeout }),
      ...secureContext(material),
      requestCert: requireClientCert,
      rejectUnauthorized: requireClientCert,
    })
    // A request's socket is the TLS one, which keeps an address of its own and asks for it only after the
    // handshake: the TCP socket's, read at once, is what it falls back on (clientIp).
    server.on("connection", rememberPeer)
    server.on("secureConnection", rememberPeer)
    let version = yield* filesVersion(tls)
    const reload = Effect.gen(function* () {
      const current = yield* filesVersion(tls)
      if (current === version) return
      const next = yield* readTlsFiles(tls)
      // setSecureContext throws on a key that does not match its certificate: keep serving the old pair.
      yield* Effect.try(() => server.setSecureContext(secureContext(next)))
      version = current
      yield* Effect.logInfo("reloaded TLS certificate").pipe(Effect.annotateLogs("cert-file", tls.certFile))
    }).pipe(
      Effect.catchAll((error) =>
        Effect.logWarning("TLS certificate reload failed; keeping the previous one").pipe(
          Effect.annotateLogs("error", String(error)),
        ),
      ),
    )
    yield* Effect.forkScoped(
      reload.pipe(
        Effect.repeat(Schedule.spaced(RELOAD_CHECK_INTERVAL)),
        Effect.annotateLogs("subsystem", subsystem),
      ),
    )
    return server
  })
