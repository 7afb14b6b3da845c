import { readFile } from "node:fs/promises"
import { Console, Effect, Layer } from "effect"
import { EndpointId } from "../Domain/EndpointId.js"
import * as Forward from "../Forward.js"
import { formatAddressInfo, type ListenError } from "../internal/Listen.js"
import { readSecretValue } from "../PicoConfig/KeyMaterial.js"
import { ConfigError, type ForwardTcpConfigShape } from "../PicoConfig.js"

const readCa = (path: string) =>
  path === ""
    ? Effect.succeed(undefined)
    : Effect.tryPromise({
        try: () => readFile(path),
        catch: (cause) =>
          new ConfigError({
            message: `--server.tls.ca-file: cannot read ${path}: ${(cause as Error).message}`,
          }),
      })

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
        ca: yield* readCa(config.server.tls.caFile),
        bindAddr: config.local.bindAddr,
      })
      yield* Console.log(
        `listening on ${formatAddressInfo(address)}, forwarding to endpoint ${endpointId} through ${config.server.url}`,
      )
    }),
  )
