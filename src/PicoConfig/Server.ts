import * as Either from "effect/Either"
import { defaultRedactedHeaders } from "../Domain/Capture.js"
import { filePrefix, secretProblem } from "./SecretText.js"
import { tlsSettings, tokenSettings } from "./Security.js"
import * as Setting from "./Setting.js"

export const bindAddr = (what: string, defaultValue: string) =>
  Setting.address(`Address for ${what}; ":PORT" is every interface.`, defaultValue)

const advertiseAddr = (port: string) =>
  Setting.optionalDialAddress(
    `How other nodes reach this ${port} port; empty: the bound address or private IP.`,
  )

const joinAddress = (item: string) =>
  /^[A-Za-z0-9.\-_:[\]]+$/.test(item)
    ? Either.right(item)
    : Either.left('expected "host", "host:port" or "[v6]:port" (a DNS name may resolve to several nodes)')

/** The limits every HTTP port puts on its clients (see internal/Listener.ts and docs/configuration.md). */
const clientLimits = (maxConnections: number) => ({
  readHeaderTimeout: Setting.duration(
    "Time a client has to send a whole request head, then 408 (with TLS, also the time to finish the handshake).",
    "10s",
  ),
  idleTimeout: Setting.duration("Longest idle keep-alive, and longest pause in a request body.", "60s"),
  maxConnections: Setting.integer(
    "Open connections at most; past it the longest-idle one is closed.",
    maxConnections,
    1,
    1_000_000,
  ),
})

/** The subsystems a node logs under (docs/configuration.md says what each covers). */
export const serverSubsystems = [
  "main",
  "server",
  "cluster",
  "gossip",
  "proxy",
  "upstream",
  "admin",
  "tunnel",
]

/** The --log.* settings of a program that logs under `subsystems`; `example` names two of them, for --help. */
export const logSettingsFor = (subsystems: ReadonlyArray<string>, example: string) => ({
  level: Setting.choice("Minimum log level.", ["debug", "info", "warn", "error"] as const, "info"),
  // A name the program never logs under (a typo, another program's) would show nothing more, silently.
  subsystems: Setting.list(
    `Subsystems to log at every level whatever --log.level, e.g. ${example}.`,
    (item) =>
      subsystems.includes(item)
        ? Either.right(item)
        : Either.left(`unknown subsystem "${item}"; this program logs under ${subsystems.join(", ")}`),
  ),
})

/** Everything `pico server` can be configured with, as flags or as YAML keys. */
export const serverSettings = {
  proxy: {
    bindAddr: bindAddr("proxy clients", ":8000"),
    gatewayTimeout: Setting.duration(
      "Time for response headers once the body is sent (and for a route to appear), then 504.",
      "15s",
    ),
    advertiseAddr: advertiseAddr("proxy"),
    ...clientLimits(10_000),
    auth: tokenSettings("proxy client"),
    tls: {
      ...tlsSettings("proxy"),
      peerCaFile: Setting.string(
        "PEM CA verifying other nodes' proxy certificates (default: system CAs).",
        "",
        "file",
      ),
    },
  },
  upstream: {
    bindAddr: bindAddr("agents' tunnels", ":8001"),
    heartbeatInterval: Setting.duration("How often the server pings each upstream session.", "10s"),
    heartbeatTimeout: Setting.duration("Time a ping may go unanswered before the session is closed.", "10s"),
    ...clientLimits(16_384),
    tls: tlsSettings("upstream"),
  },
  admin: {
    bindAddr: bindAddr("the admin API", ":8002"),
    advertiseAddr: advertiseAddr("admin"),
    forwardTimeout: Setting.duration("Time ?forward=<node id> waits for the node's answer, then 504.", "15s"),
    ...clientLimits(1024),
    auth: tokenSettings("admin API"),
    tls: tlsSettings("admin"),
  },
  server: {
    gracefulShutdownTimeout: Setting.duration(
      "On SIGTERM or SIGINT, time in-flight requests get to finish.",
      "1m",
    ),
  },
  cluster: {
    nodeId: Setting.checkedString(
      "This node's id; empty: --cluster.node-id-prefix and 7 random characters.",
      "",
      (text) =>
        /^[A-Za-z0-9._~-]{0,128}$/.test(text) ? undefined : "use at most 128 of A-Z a-z 0-9 . _ ~ -",
      "id",
    ),
    nodeIdPrefix: Setting.string('Prefix of the generated node id, e.g. "${POD_NAME}-".'),
    join: Setting.list(
      "Nodes to join: gossip addresses, or DNS names resolving to every node.",
      joinAddress,
      "addr",
    ),
    joinTimeout: Setting.duration("How long to keep retrying the join at startup.", "1m"),
    abortIfJoinFails: Setting.boolean("Exit 1 when the join fails within --cluster.join-timeout.", true),
  },
  gossip: {
    bindAddr: bindAddr("gossip, UDP and TCP", ":8003"),
    advertiseAddr: advertiseAddr("gossip"),
    interval: Setting.duration("How often this node exchanges state with a random peer.", "500ms"),
    maxPacketSize: Setting.integer("Largest UDP packet gossip sends, in bytes.", 1400, 512, 65_000),
    secretKey: Setting.secretList(
      "Cluster keys (at least 32 characters each) that authenticate and encrypt gossip; the same on every " +
        'node. The first one sends, any one is accepted, so keys rotate without downtime. "file:PATH" reads ' +
        "keys from a file, one per line. Empty: gossip is unauthenticated (anyone who reaches the gossip port " +
        "can change routes).",
      (item) =>
        item.startsWith(filePrefix)
          ? item.length > filePrefix.length
            ? undefined
            : "file: needs a path"
          : secretProblem(item),
    ),
  },
  auth: tokenSettings("upstream"),
  log: logSettingsFor(serverSubsystems, "proxy,tunnel"),
  accessLog: {
    enabled: Setting.boolean("One JSON line per proxied request or upgrade, whatever --log.level.", true),
    file: Setting.string(
      "Append access log lines to this file; empty: stderr, with the other logs.",
      "",
      "path",
    ),
    query: Setting.boolean("Log paths with their query strings, which may carry secrets.", false),
  },
  capture: {
    endpoints: Setting.stringList("Endpoints captured from the start; pico capture starts and stops others."),
    exchanges: Setting.integer("Exchanges kept per captured endpoint, in flight or done.", 100, 1, 10_000),
    bodyKib: Setting.integer("KiB of each request and response body a capture keeps.", 32, 0, 1024),
    redactHeaders: Setting.stringList(
      `More headers a capture never keeps the value of, besides ${defaultRedactedHeaders.join(", ")} (always).`,
    ),
  },
}

/** Settings that are fine alone but not together; undefined when the whole config is consistent. */
export const serverConfigProblem = (config: {
  readonly cluster: { readonly nodeId: string; readonly nodeIdPrefix: string }
}): string | undefined =>
  config.cluster.nodeId !== "" && config.cluster.nodeIdPrefix !== ""
    ? "--cluster.node-id and --cluster.node-id-prefix cannot both be set"
    : undefined
