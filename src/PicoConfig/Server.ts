import { bindAddrProblem } from "../Domain/Address.js"
import { tlsSettings, tokenSettings } from "./Security.js"
import * as Setting from "./Setting.js"

const bindAddr = (what: string, defaultValue: string) =>
  Setting.checkedString(
    `Address to listen on for ${what}. ":PORT" listens on every interface.`,
    defaultValue,
    bindAddrProblem,
    "addr",
  )

export const logSettings = {
  level: Setting.choice("Minimum log level.", ["debug", "info", "warn", "error"] as const, "info"),
  subsystems: Setting.stringList(
    "Subsystems whose logs are shown at every level, overriding --log.level (exact names, e.g. proxy,tunnel).",
  ),
}

/** Everything `pico server` can be configured with, as flags or as YAML keys. */
export const serverSettings = {
  proxy: {
    bindAddr: bindAddr("proxy clients (HTTP requests to route to upstreams)", ":8000"),
    gatewayTimeout: Setting.duration(
      "How long to wait for an upstream's response headers before answering 504. A streaming body may take longer.",
      "15s",
    ),
    auth: tokenSettings("proxy client"),
    tls: tlsSettings("proxy"),
  },
  upstream: {
    bindAddr: bindAddr("upstream connections (agents open WebSockets here)", ":8001"),
    heartbeatInterval: Setting.duration("How often the server pings each upstream session.", "10s"),
    heartbeatTimeout: Setting.duration(
      "How long a ping may go unanswered before the upstream session is closed.",
      "10s",
    ),
    tls: tlsSettings("upstream"),
  },
  admin: {
    bindAddr: bindAddr("the admin API (health, readiness, metrics, status)", ":8002"),
    auth: tokenSettings("admin API"),
    tls: tlsSettings("admin"),
  },
  server: {
    gracefulShutdownTimeout: Setting.duration(
      "On SIGTERM/SIGINT, how long in-flight requests may take to finish before the server exits anyway.",
      "1m",
    ),
  },
  auth: tokenSettings("upstream"),
  log: logSettings,
}
