import { Either } from "effect"
import { secretProblem } from "../ClusterKeys.js"
import { bindAddrProblem } from "../Domain/Address.js"
import { filePrefix } from "./KeyMaterial.js"
import { tlsSettings, tokenSettings } from "./Security.js"
import * as Setting from "./Setting.js"

const bindAddr = (what: string, defaultValue: string) =>
  Setting.checkedString(
    `Address to listen on for ${what}. ":PORT" listens on every interface.`,
    defaultValue,
    bindAddrProblem,
    "addr",
  )

const advertiseAddr = (port: string) =>
  Setting.checkedString(
    `Address other nodes use to reach this node's ${port} port. Empty: the bound address, or this machine's ` +
      "private IP when listening on every interface.",
    "",
    (text) => (text === "" ? undefined : bindAddrProblem(text)),
    "addr",
  )

const joinAddress = (item: string) =>
  /^[A-Za-z0-9.\-_:[\]]+$/.test(item)
    ? Either.right(item)
    : Either.left('expected "host", "host:port" or "[v6]:port" (a DNS name may resolve to several nodes)')

/** The limits every HTTP port puts on its clients (see internal/Listener.ts). */
const clientLimits = (port: string, maxConnections: number) => ({
  readHeaderTimeout: Setting.duration(
    `How long a ${port} client may take to send a complete request head (counted from its connection, or from ` +
      "its previous request). Slower and silent connections are answered 408 and closed.",
    "10s",
  ),
  idleTimeout: Setting.duration(
    `How long a ${port} connection may stay open with no request in flight (keep-alive), and the longest pause ` +
      "between two reads of a request body.",
    "60s",
  ),
  maxConnections: Setting.integer(
    `Most ${port} connections open at once. At the cap a new connection closes the longest-idle one; if every ` +
      "connection is busy, it is refused. Both are logged and counted in pico_connections_over_limit_total.",
    maxConnections,
    1,
    1_000_000,
  ),
})

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
      "How long to wait for an upstream's response headers once the request body has been sent, before " +
        "answering 504; it also bounds waiting for a route while the cluster converges. A slow upload is bounded " +
        "by --proxy.idle-timeout between reads instead, and a streaming response body may take longer.",
      "15s",
    ),
    advertiseAddr: advertiseAddr("proxy"),
    ...clientLimits("proxy", 10_000),
    auth: tokenSettings("proxy client"),
    tls: {
      ...tlsSettings("proxy"),
      peerCaFile: Setting.string(
        "PEM CA bundle that verifies other nodes' proxy certificates when a request is forwarded to them over " +
          "TLS (default: the system's CAs). Each node presents its own proxy certificate to its peers.",
      ),
    },
  },
  upstream: {
    bindAddr: bindAddr("upstream connections (agents open WebSockets here)", ":8001"),
    heartbeatInterval: Setting.duration("How often the server pings each upstream session.", "10s"),
    heartbeatTimeout: Setting.duration(
      "How long a ping may go unanswered before the upstream session is closed.",
      "10s",
    ),
    ...clientLimits("upstream", 16_384),
    tls: tlsSettings("upstream"),
  },
  admin: {
    bindAddr: bindAddr("the admin API (health, readiness, metrics, status)", ":8002"),
    advertiseAddr: advertiseAddr("admin"),
    forwardTimeout: Setting.duration(
      "How long a ?forward=<node id> request may wait for the other node's response headers before 504.",
      "15s",
    ),
    ...clientLimits("admin", 1024),
    auth: tokenSettings("admin API"),
    tls: tlsSettings("admin"),
  },
  server: {
    gracefulShutdownTimeout: Setting.duration(
      "On SIGTERM/SIGINT, how long in-flight requests may take to finish before the server exits anyway.",
      "1m",
    ),
  },
  cluster: {
    nodeId: Setting.checkedString(
      "This node's id. Empty: --cluster.node-id-prefix plus 7 random characters, fresh on every start (a " +
        "restarted process must not reuse a dead node's identity).",
      "",
      (text) =>
        /^[A-Za-z0-9._~-]{0,128}$/.test(text) ? undefined : "use at most 128 of A-Z a-z 0-9 . _ ~ -",
      "id",
    ),
    nodeIdPrefix: Setting.string('Prefix of the generated node id, e.g. "${POD_NAME}-".'),
    join: Setting.list(
      "Gossip addresses of nodes to join (port optional, default the gossip port), or DNS names resolving to " +
        "every node (e.g. a Kubernetes headless service). Membership then spreads, so a subset is enough.",
      joinAddress,
      "addr",
    ),
    joinTimeout: Setting.duration("How long to keep retrying the join at startup.", "1m"),
    abortIfJoinFails: Setting.boolean(
      "Exit 1 when no node in --cluster.join could be reached within --cluster.join-timeout.",
      true,
    ),
  },
  gossip: {
    bindAddr: bindAddr("gossip with other nodes (UDP and TCP on the same port)", ":8003"),
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
  log: logSettings,
}

/** Settings that are fine alone but not together; undefined when the whole config is consistent. */
export const serverConfigProblem = (config: {
  readonly cluster: { readonly nodeId: string; readonly nodeIdPrefix: string }
}): string | undefined =>
  config.cluster.nodeId !== "" && config.cluster.nodeIdPrefix !== ""
    ? "--cluster.node-id and --cluster.node-id-prefix cannot both be set"
    : undefined
