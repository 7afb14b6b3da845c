import { endpointIdRule, isValidEndpointId } from "../Domain/EndpointId.js"
import { logSettingsFor } from "./Server.js"
import * as Setting from "./Setting.js"

/** Everything `pico forward tcp` can be configured with, as flags or as YAML keys. */
export const forwardTcpSettings = {
  endpoint: Setting.checkedString(
    "The TCP endpoint to connect to (its id).",
    "",
    (id) => (id === "" || isValidEndpointId(id) ? undefined : `endpoint id must be ${endpointIdRule}`),
    "id",
  ),
  local: {
    bindAddr: Setting.address(
      "Local address to accept connections on; port 0 picks a free one.",
      "127.0.0.1:0",
    ),
  },
  server: {
    url: Setting.url(
      "A proxy port's URL (a node's or its load balancer's); https for TLS.",
      "http://localhost:8000",
      Setting.httpUrl("http://localhost:8000"),
    ),
    tls: {
      caFile: Setting.string("PEM CA bundle to trust for an https server URL (a private CA).", "", "file"),
    },
  },
  auth: {
    token: Setting.secret(
      'Proxy token (JWT) sent as "Authorization: Bearer <token>", or "file:PATH".',
      "token",
    ),
  },
  log: logSettingsFor(["main", "forward"], "main,forward"),
}

/** The flag `pico forward tcp` cannot do without; undefined when it is given. */
export const forwardTcpConfigProblem = (config: { readonly endpoint: string }): string | undefined =>
  config.endpoint === "" ? "--endpoint: required, e.g. --endpoint db" : undefined
