import * as Either from "effect/Either"
import { bindAddrProblem, parseHostPort } from "../Domain/Address.js"
import { type EndpointId, endpointIdRule, isValidEndpointId } from "../Domain/EndpointId.js"
import { logSettingsFor } from "./Server.js"
import * as Setting from "./Setting.js"

/**
 * How the agent reaches an endpoint's service: `http` and `https` make an HTTP endpoint (TLS to the service for
 * https, see --forwarder.tls.*); `tcp` makes a TCP endpoint, whose connections are piped to the service as bytes.
 */
export type ServiceScheme = "http" | "https" | "tcp"

/** One `--endpoints` entry: the endpoint id to register and the local service to forward its requests to. */
export interface AgentEndpoint {
  readonly id: EndpointId
  readonly host: string
  readonly port: number
  readonly scheme: ServiceScheme
}

/** The port an http:// or https:// URL without one means; a tcp:// address must name its port. */
const defaultPorts: Record<string, string> = { "http:": "80", "https:": "443" }

const urlScheme = /^(https?|tcp):\/\//

/**
 * "my-endpoint/localhost:4000", "my-endpoint/4000", "my-endpoint/http://localhost:4000" (all plain HTTP),
 * "my-endpoint/https://localhost:8443" (TLS to the service) or "db/tcp://localhost:5432" (a TCP endpoint).
 */
export const parseAgentEndpoint = (text: string): Either.Either<AgentEndpoint, string> => {
  const slash = text.indexOf("/")
  if (slash <= 0) return Either.left("expected <endpoint id>/<address>, e.g. my-endpoint/localhost:4000")
  const id = text.slice(0, slash)
  if (!isValidEndpointId(id)) return Either.left(`endpoint id must be ${endpointIdRule}`)
  let address = text.slice(slash + 1)
  const prefix = urlScheme.exec(address)
  const scheme = (prefix?.[1] ?? "http") as ServiceScheme
  if (prefix !== null) {
    try {
      const url = new URL(address)
      const port = url.port === "" ? defaultPorts[url.protocol] : url.port
      if (port === undefined) return Either.left("a tcp:// address needs a port, e.g. tcp://localhost:5432")
      address = `${url.hostname}:${port}`
    } catch {
      return Either.left("invalid URL")
    }
  } else if (/^\d+$/.test(address)) {
    address = `localhost:${address}`
  }
  const target = parseHostPort(address)
  if (target === undefined || target.host === "" || target.port === 0) {
    return Either.left("address must be host:port, a port, or an http://, https:// or tcp:// URL")
  }
  return Either.right({ id, host: target.host, port: target.port, scheme })
}

const serverUrlProblem = (text: string): string | undefined => {
  try {
    const url = new URL(text)
    return ["http:", "https:", "ws:", "wss:"].includes(url.protocol)
      ? undefined
      : "the scheme must be http, https, ws or wss"
  } catch {
    return "expected a URL such as http://localhost:8001"
  }
}

/** Everything `pico agent` can be configured with, as flags or as YAML keys. */
export const agentSettings = {
  endpoints: Setting.list(
    "Endpoints as <id>/<address>, e.g. web/4000, api/https://host:8443, db/tcp://host:5432.",
    parseAgentEndpoint,
    "id/addr",
  ),
  server: {
    url: Setting.url(
      "The server's upstream URL; a path is a prefix, http(s) means ws(s).",
      "http://localhost:8001",
      serverUrlProblem,
    ),
    heartbeatInterval: Setting.duration("How often to ping the server on each tunnel.", "10s"),
    heartbeatTimeout: Setting.duration(
      "Time a ping may go unanswered before the tunnel is reconnected.",
      "10s",
    ),
    tls: {
      caFile: Setting.string(
        "PEM CA bundle to trust for an https/wss server URL (a private CA).",
        "",
        "file",
      ),
      certFile: Setting.string("PEM client certificate to present to the server (mTLS).", "", "file"),
      keyFile: Setting.string("PEM private key of --server.tls.cert-file.", "", "file"),
    },
  },
  auth: {
    apiKey: Setting.secret('Token (JWT) sent as "Authorization: Bearer <key>", or "file:PATH".', "token"),
  },
  admin: {
    bindAddr: Setting.checkedString(
      "Address for the agent's /health and /metrics, e.g. :9000; empty: none.",
      "",
      (text) => (text === "" ? undefined : bindAddrProblem(text)),
      "addr",
    ),
  },
  forwarder: {
    timeout: Setting.duration("Time to connect to the local service before answering 504.", "10s"),
    tls: {
      caFile: Setting.string("PEM CA bundle for https:// endpoints; empty: Node's public CAs.", "", "file"),
      insecureSkipVerify: Setting.toggle("Accept any certificate from https:// endpoints. Dangerous."),
    },
  },
  log: logSettingsFor(["main", "agent", "tunnel", "admin"], "agent,tunnel"),
}
