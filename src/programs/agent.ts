import { Effect, Either, Layer } from "effect"
import * as Agent from "../Agent.js"
import * as AgentAdmin from "../AgentAdmin.js"
import { parseHostPort } from "../Domain/Address.js"
import type { ListenError } from "../internal/Listen.js"
import { readCaFile, readPemFile, readSecretValue } from "../PicoConfig/KeyMaterial.js"
import { checkTls } from "../PicoConfig/TlsCheck.js"
import { type AgentConfigShape, ConfigError } from "../PicoConfig.js"
import * as Tunnel from "../Tunnel.js"

/** The agent's TLS files, read once at start (the server side is the one that rotates certificates live). */
const clientTls = (config: AgentConfigShape) =>
  Effect.gen(function* () {
    const { caFile, certFile, keyFile } = config.server.tls
    if ((certFile === "") !== (keyFile === "")) {
      return yield* new ConfigError({
        reason: "invalid",
        message: "--server.tls.cert-file and --server.tls.key-file go together",
      })
    }
    const ca = yield* readPemFile(caFile, "server.tls.ca-file")
    const cert = yield* readPemFile(certFile, "server.tls.cert-file")
    const key = yield* readPemFile(keyFile, "server.tls.key-file")
    yield* checkTls({ ca, cert, key })
    return {
      ...(ca === undefined ? {} : { ca: ca.pem }),
      ...(cert === undefined || key === undefined ? {} : { cert: cert.pem, key: key.pem }),
    }
  })

/** The endpoints as the agent forwards to them: https:// ones with the --forwarder.tls.* settings, tcp:// ones raw. */
const endpointTargets = (config: AgentConfigShape) =>
  Effect.gen(function* () {
    const ca = yield* readCaFile(config.forwarder.tls.caFile, "forwarder.tls.ca-file")
    const serviceTls: Agent.ServiceTls = {
      ...(ca === undefined ? {} : { ca }),
      insecureSkipVerify: config.forwarder.tls.insecureSkipVerify,
    }
    return config.endpoints.map(
      ({ id, host, port, scheme }): Agent.AgentEndpointOptions =>
        scheme === "tcp"
          ? { id, host, port, kind: "tcp" }
          : scheme === "https"
            ? { id, host, port, tls: serviceTls }
            : { id, host, port },
    )
  })

/** The forward proxy HTTPS_PROXY, HTTP_PROXY and NO_PROXY name for the server URL, if any. */
const serverProxy = (serverUrl: string) =>
  Either.match(Agent.proxyFromEnvironment(serverUrl, process.env), {
    onLeft: (message) => Effect.fail(new ConfigError({ reason: "invalid", message })),
    onRight: (proxy) =>
      proxy === undefined
        ? Effect.succeed(undefined)
        : Effect.as(
            Effect.logInfo("reaching the server through a forward proxy").pipe(
              Effect.annotateLogs({ subsystem: "agent", proxy: proxy.url.host, from: proxy.variable }),
            ),
            proxy.url,
          ),
  })

/** The tunnels: one per configured endpoint, until interrupted, refused, or shown the wrong port. */
const runTunnels = (config: AgentConfigShape) =>
  Effect.gen(function* () {
    const apiKey = yield* readSecretValue(config.auth.apiKey, "auth.api-key")
    const proxy = yield* serverProxy(config.server.url)
    return yield* Agent.run({
      endpoints: yield* endpointTargets(config),
      serverUrl: config.server.url,
      forwardTimeout: config.forwarder.timeout,
      healthyAfter: config.server.heartbeatInterval,
      headers: apiKey === undefined ? {} : { authorization: `Bearer ${apiKey}` },
      tls: yield* clientTls(config),
      ...(proxy === undefined ? {} : { proxy }),
    })
  })

/** WebSocket tunnels to the server, with the configured heartbeats. */
export const tunnelLayer = (config: AgentConfigShape): Layer.Layer<Tunnel.Tunnel> =>
  Tunnel.layer({ interval: config.server.heartbeatInterval, timeout: config.server.heartbeatTimeout })

/**
 * `pico agent` as a layer graph: the tunnels over `tunnel` (WebSockets by default; `Tunnel.layerMemory` in
 * tests), beside the admin port. Launched, it runs until interrupted, and fails when retrying cannot help.
 */
export const agentLayer = (
  config: AgentConfigShape,
  tunnel: Layer.Layer<Tunnel.Tunnel> = tunnelLayer(config),
): Layer.Layer<never, Agent.AgentError | ConfigError | ListenError> =>
  Layer.effectDiscard(runTunnels(config)).pipe(
    Layer.provide(tunnel),
    Layer.merge(adminLayer(config.admin.bindAddr)),
  )

/** The agent's /health and /metrics, when --admin.bind-addr asks for them. */
const adminLayer = (bindAddr: string): Layer.Layer<never, ListenError | ConfigError> => {
  const address = parseHostPort(bindAddr)
  return address === undefined ? Layer.empty : Layer.discard(AgentAdmin.layerServer(address))
}
