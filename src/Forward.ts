import * as net from "node:net"
import { Duration, Effect, FiberSet, Schema, type Scope } from "effect"
import { type HostPort, unbracketed } from "./Domain/Address.js"
import type { EndpointId } from "./Domain/EndpointId.js"
import { tcpUpgradeToken } from "./Domain/EndpointKind.js"
import { requestUpgrade } from "./internal/HttpUpgrade.js"
import { listen as bind, type ListenError } from "./internal/Listen.js"
import { resetConnection } from "./internal/Reset.js"

/**
 * The client side of TCP endpoints: a connection to a TCP endpoint is an HTTP upgrade on a node's proxy port
 * (`Upgrade: pico-tcp`), so it crosses load balancers, the one hop between nodes, proxy authentication and TLS as
 * HTTP does. `connect` opens one and hands back the connected socket; `listen` accepts local connections and
 * carries each one to the endpoint, as `pico forward tcp` does.
 */

export interface ConnectOptions {
  /** A proxy port's URL (a node's, or a load balancer's in front of them): http, or https for TLS. */
  readonly serverUrl: string
  readonly endpointId: EndpointId
  /** A token for a proxy port that requires one (`--proxy.auth.*`), sent as "Authorization: Bearer <token>". */
  readonly token?: string | undefined
  /** For an https server URL: the PEM CA certificates to trust (a private CA); Node's public CAs otherwise. */
  readonly ca?: Buffer | undefined
  /** How long the proxy and the endpoint's agent may take to accept the connection; 30 s when absent. */
  readonly timeout?: Duration.DurationInput | undefined
}

/** A connection to a TCP endpoint could not be opened. The message is one line for a human. */
export class ForwardError extends Schema.TaggedError<ForwardError>()("ForwardError", {
  /**
   * "unreachable": no answer from the server URL (refused, reset, TLS failure), or a 101 that does not switch to
   * pico-tcp; "refused": the proxy or the agent answered with an error status (503 endpoint not found, 502 the
   * service refused, 401, ...); "timeout": no answer in time.
   */
  reason: Schema.Literal("unreachable", "refused", "timeout"),
  /** The HTTP status of a refusal. */
  status: Schema.optional(Schema.Number),
  message: Schema.String,
}) {}

const DEFAULT_TIMEOUT = Duration.seconds(30)

/** `http://lb:8000/prefix` + `db` → `/prefix/pico/v1/tcp/db`: the endpoint in the path, for balancers' logs. */
const upgradePath = (url: URL, endpointId: EndpointId): string =>
  `${url.pathname.replace(/\/+$/, "")}/pico/v1/tcp/${endpointId}`

/**
 * Opens one TCP connection to the endpoint and returns it, connected: the socket to the proxy port, whose bytes
 * are the service's from now on. Half-closes pass through (`end()` sends FIN to the service and the socket may
 * still read). The caller owns the socket and ends or destroys it.
 */
export const connect = (options: ConnectOptions): Effect.Effect<net.Socket, ForwardError> =>
  Effect.async<net.Socket, ForwardError>((resume) => {
    const url = new URL(options.serverUrl)
    const secure = url.protocol === "https:"
    const target = url.host
    const timeout = Duration.decode(options.timeout ?? DEFAULT_TIMEOUT)
    const abandon = requestUpgrade(
      {
        secure,
        request: {
          host: unbracketed(url.hostname),
          port: url.port === "" ? (secure ? 443 : 80) : Number(url.port),
          path: upgradePath(url, options.endpointId),
          headers: {
            connection: "Upgrade",
            upgrade: tcpUpgradeToken,
            "x-pico-endpoint": options.endpointId,
            ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
          },
          agent: false,
          ...(secure && options.ca !== undefined ? { ca: options.ca } : {}),
        },
        timeoutMs: Duration.toMillis(timeout),
        invalidAnswer: (response) =>
          response.headers.upgrade?.toLowerCase() === tcpUpgradeToken
            ? undefined
            : `the answer does not upgrade to ${tcpUpgradeToken}`,
      },
      (outcome) => {
        const fail = (error: ConstructorParameters<typeof ForwardError>[0]) =>
          resume(Effect.fail(new ForwardError(error)))
        switch (outcome._tag) {
          case "Switched": {
            const socket = outcome.socket as net.Socket
            socket.setNoDelay(true)
            socket.allowHalfOpen = true
            if (outcome.head.length > 0) socket.unshift(outcome.head)
            return resume(Effect.succeed(socket))
          }
          case "Refused": {
            const { status, message } = outcome
            return fail({ reason: "refused", status, message: `${target} answered ${status}: ${message}` })
          }
          case "Unreachable":
            return fail({ reason: "unreachable", message: `cannot reach ${target}: ${outcome.message}` })
          case "TimedOut":
            return fail({
              reason: "timeout",
              message: `no answer from ${target} within ${Duration.format(timeout)}`,
            })
        }
      },
    )
    return Effect.sync(abandon)
  })

/**
 * Pipes two connections together both ways, with backpressure, passing half-closes through: each side's FIN ends
 * only its own direction. Either side closing ends both; one that failed is passed on as a reset.
 */
const splice = (a: net.Socket, b: net.Socket): void => {
  a.allowHalfOpen = true
  b.allowHalfOpen = true
  a.pipe(b)
  b.pipe(a)
  a.on("error", () => resetConnection(b))
  b.on("error", () => resetConnection(a))
  a.once("close", () => b.destroy())
  b.once("close", () => a.destroy())
}

export interface ListenOptions extends ConnectOptions {
  /** Where to accept local connections ("127.0.0.1:15432"; an empty host is every interface). */
  readonly bindAddr: HostPort
}

/**
 * Accepts connections on `bindAddr` until the scope closes, and carries each one to the endpoint through its own
 * `connect`. A connection the server refuses is closed, and logged with the reason; the others carry on. Returns
 * the bound address (port 0 becomes the real port). Closing the scope cuts the connections still open.
 */
export const listen = (options: ListenOptions): Effect.Effect<net.AddressInfo, ListenError, Scope.Scope> =>
  Effect.gen(function* () {
    const run = yield* FiberSet.makeRuntime<never>()
    const open = new Set<net.Socket>()
    // Paused until the endpoint is connected: what the client sends meanwhile waits in the kernel, not here.
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true, noDelay: true })
    const address = yield* bind(server, options.bindAddr, "local")
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const socket of open) socket.destroy()
      }),
    )
    server.on("connection", (local: net.Socket) => {
      open.add(local)
      local.once("close", () => open.delete(local))
      local.on("error", () => local.destroy())
      run(
        connect(options).pipe(
          Effect.tap((remote) =>
            Effect.sync(() => (local.destroyed ? remote.destroy() : splice(local, remote))),
          ),
          Effect.catchAll((error) =>
            Effect.sync(() => local.destroy()).pipe(
              Effect.zipRight(Effect.logWarning("connection to the endpoint failed")),
              Effect.annotateLogs({ reason: error.reason, error: error.message }),
            ),
          ),
          Effect.annotateLogs({ subsystem: "forward", "endpoint-id": options.endpointId }),
        ),
      )
    })
    return address
  })
