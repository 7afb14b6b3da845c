import { Console, Effect, Layer } from "effect"
import { EndpointId } from "../Domain/EndpointId.js"
import * as Forward from "../Forward.js"
import { formatAddressInfo, type ListenError } from "../internal/Listen.js"
import { withoutCredentials } from "../internal/UrlCredentials.js"
import { readCaFile, readSecretValue } from "../PicoConfig/KeyMaterial.js"
import type { ConfigError, ForwardTcpConfigShape } from "../PicoConfig.js"

/**
 * `pico forward tcp` as a layer: listens on --local.bind-addr and carries each connection to the TCP endpoint
 * through the proxy port at --server.url, saying once, on stdout, where it listens. Runs until interrupted.
 * Expects a checked config (forwardTcpConfigProblem: an endpoint is given).
 */
export const forwardTcpLayer = (
  config: ForwardTcpConfigShape,
): Layer.Layer<never, ConfigError | ListenError> =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const endpointId = EndpointId(config.endpoint)
      const address = yield* Forward.listen({
        serverUrl: config.server.url,
        endpointId,
        token: yield* readSecretValue(config.auth.token, "auth.token"),
        ca: yield* readCaFile(config.server.tls.caFile, "server.tls.ca-file"),
        bindAddr: config.local.bindAddr,
      })
      yield* Console.log(
        `listening on ${formatAddressInfo(address)}, forwarding to endpoint ${endpointId} through ${withoutCredentials(config.server.url)}`,
      )
    }),
  )
