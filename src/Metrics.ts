import { randomUUID } from "node:crypto"
import { type Effect, FiberRef, Layer, Metric, MetricBoundaries, MetricLabel } from "effect"

/**
 * Every metric Pico exposes, declared in one place. Counters and histograms that change where things happen are
 * Effect metrics; gauges that mirror state (cluster members, connected upstreams, ...) and counters kept by
 * another subsystem (gossip traffic) are computed when /metrics is scraped, so they can never drift from what
 * they describe. Names follow Prometheus conventions: base units, `_total` on counters only.
 */

/** A metric family as /metrics shows it: its HELP and TYPE lines. */
export interface Family {
  readonly name: string
  readonly help: string
  readonly type: "counter" | "gauge" | "histogram"
}

/** Collects the families of one /metrics page in declaration order, which is the order they are shown in. */
const page = () => {
  const families: Array<Family> = []
  const add = (family: Family): Family => {
    families.push(family)
    return family
  }
  return {
    families: families as ReadonlyArray<Family>,
    counter: (name: string, help: string) => {
      add({ name, help, type: "counter" })
      return Metric.counter(name, { description: help, incremental: true })
    },
    histogram: (name: string, help: string, boundaries: MetricBoundaries.MetricBoundaries) => {
      add({ name, help, type: "histogram" })
      return Metric.histogram(name, boundaries, help)
    },
    /** A value read when /metrics is scraped. */
    scraped: (name: string, help: string, type: "counter" | "gauge") => add({ name, help, type }),
  }
}

/** 1 ms to 16 s (just above the default 15 s gateway timeout), doubling. */
const latencyBuckets = MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 16 })

// --- Server node ---

const server = page()

export const clusterNodes = server.scraped(
  "pico_cluster_nodes",
  "Nodes in this node's cluster view by status (active, unreachable, left), itself included.",
  "gauge",
)
export const gossipEntries = server.scraped(
  "pico_gossip_entries",
  "Gossip entries stored for each node, by whether they are deleted (tombstones) and internal.",
  "gauge",
)
export const gossipPacketsInbound = server.scraped(
  "pico_gossip_packets_inbound_total",
  "Gossip UDP packets received.",
  "counter",
)
export const gossipPacketsOutbound = server.scraped(
  "pico_gossip_packets_outbound_total",
  "Gossip UDP packets sent.",
  "counter",
)
export const gossipStreamsInbound = server.scraped(
  "pico_gossip_streams_inbound_total",
  "Gossip TCP exchanges (join, leave, large deltas) answered.",
  "counter",
)
export const gossipStreamsOutbound = server.scraped(
  "pico_gossip_streams_outbound_total",
  "Gossip TCP exchanges (join, leave, large deltas) started.",
  "counter",
)
export const gossipBytesInbound = server.scraped(
  "pico_gossip_bytes_inbound_total",
  "Gossip payload bytes received, UDP and TCP.",
  "counter",
)
export const gossipBytesOutbound = server.scraped(
  "pico_gossip_bytes_outbound_total",
  "Gossip payload bytes sent, UDP and TCP.",
  "counter",
)
export const gossipMalformed = server.scraped(
  "pico_gossip_malformed_messages_total",
  "Gossip packets and streams dropped because they did not decode.",
  "counter",
)
export const gossipRejected = server.scraped(
  "pico_gossip_rejected_messages_total",
  "Gossip packets and streams dropped because they failed authentication, by reason: unauthenticated (not " +
    "sealed, and this node has a key), no_key (sealed, and this node has none), bad_seal (wrong key or " +
    "tampered), replay, stale (timestamp outside the window). The other gossip counters leave them out.",
  "counter",
)
export const gossipRefusedStreams = server.counter(
  "pico_gossip_refused_streams_total",
  "Gossip TCP connections cut by the gossip port's limits, by reason: too_many_streams (64 were " +
    "already open), over_budget (requests still arriving held 64 MiB between them), too_large (a request " +
    "announced more than 16 MiB), too_slow (an exchange took longer than 10 s).",
)
export const proxyConnectedUpstreams = server.scraped(
  "pico_proxy_connected_upstreams",
  "Upstream tunnels connected to this node.",
  "gauge",
)
export const proxyRegisteredEndpoints = server.scraped(
  "pico_proxy_registered_endpoints",
  "Endpoints with at least one upstream connected to this node.",
  "gauge",
)
export const proxyTcpConnections = server.scraped(
  "pico_proxy_tcp_connections",
  "TCP connections open through this node's tunnels, by TCP endpoint held here (0 for one without any).",
  "gauge",
)
export const proxyTcpConnectionsTotal = server.scraped(
  "pico_proxy_tcp_connections_total",
  "TCP connections opened through this node's tunnels, by TCP endpoint.",
  "counter",
)
export const proxyTcpBytes = server.scraped(
  "pico_proxy_tcp_bytes_total",
  "Bytes carried by TCP connections through this node's tunnels, by TCP endpoint and direction (from_client, " +
    "to_client).",
  "counter",
)
export const proxyRequests = server.counter(
  "pico_proxy_requests_total",
  "Proxy requests answered, by HTTP status code (499: the client went away before a response started).",
)
export const proxyRequestDuration = server.histogram(
  "pico_proxy_request_duration_seconds",
  "Time from a proxy request arriving to its response ending.",
  latencyBuckets,
)
export const proxyForwardedLocal = server.counter(
  "pico_proxy_forwarded_local_total",
  "Proxy requests sent to an upstream connected to this node.",
)
export const proxyForwardedRemote = server.counter(
  "pico_proxy_forwarded_remote_total",
  "Proxy requests forwarded to another node, by that node's id (each node tried counts).",
)
export const upstreamConnections = server.counter(
  "pico_upstream_connections_total",
  "Upstream tunnels accepted: authenticated and registered for their endpoint.",
)
export const upstreamDisconnects = server.counter(
  "pico_upstream_disconnects_total",
  "Upstream tunnels that ended, for any reason.",
)
export const authFailures = server.counter(
  "pico_auth_failures_total",
  "Requests refused for their credentials, by port (upstream, proxy, admin) and reason.",
)

export const connectionsOverLimit = server.counter(
  "pico_connections_over_limit_total",
  "Connections closed because a port was at its --<port>.max-connections cap, by port and action " +
    "(closed_idle: the longest-idle connection made room; refused: every connection was busy).",
)

export const serverFamilies = server.families

// --- Agent ---

const agent = page()

export const agentForwards = agent.counter(
  "pico_agent_forwards_total",
  "Tunnel streams forwarded to the local service, by endpoint.",
)
export const agentForwardErrors = agent.counter(
  "pico_agent_forward_errors_total",
  "Tunnel streams the local service could not take, by endpoint and reason.",
)
export const agentResponseLatency = agent.histogram(
  "pico_agent_response_latency_seconds",
  "Time from a tunnel stream arriving to the local service's first response bytes, by endpoint: connecting " +
    "plus answering the stream's first request (later requests on a kept-alive stream are not timed).",
  latencyBuckets,
)

export const agentFamilies = agent.families

// --- Process (server and agent) ---

const runtime = page()

export const processCpuUser = runtime.scraped(
  "process_cpu_user_seconds_total",
  "User CPU time spent, in seconds.",
  "counter",
)
export const processCpuSystem = runtime.scraped(
  "process_cpu_system_seconds_total",
  "System CPU time spent, in seconds.",
  "counter",
)
export const processCpu = runtime.scraped(
  "process_cpu_seconds_total",
  "User and system CPU time spent, in seconds.",
  "counter",
)
export const processStartTime = runtime.scraped(
  "process_start_time_seconds",
  "Start time of the process since the Unix epoch, in seconds.",
  "gauge",
)
export const processResidentMemory = runtime.scraped(
  "process_resident_memory_bytes",
  "Resident memory size, in bytes.",
  "gauge",
)
export const processOpenFds = runtime.scraped(
  "process_open_fds",
  "Open file descriptors (sockets included). Linux only.",
  "gauge",
)
export const processMaxFds = runtime.scraped(
  "process_max_fds",
  "Limit on open file descriptors. Linux only.",
  "gauge",
)
export const nodejsHeapUsed = runtime.scraped(
  "nodejs_heap_size_used_bytes",
  "V8 heap in use, in bytes.",
  "gauge",
)
export const nodejsHeapTotal = runtime.scraped(
  "nodejs_heap_size_total_bytes",
  "V8 heap allocated, in bytes.",
  "gauge",
)
export const nodejsExternalMemory = runtime.scraped(
  "nodejs_external_memory_bytes",
  "Memory of buffers and other objects outside the V8 heap, in bytes.",
  "gauge",
)
export const nodejsEventLoopLagP99 = runtime.scraped(
  "nodejs_eventloop_lag_p99_seconds",
  "99th percentile of the event loop's delay since the previous scrape, in seconds.",
  "gauge",
)
export const nodejsEventLoopLagMax = runtime.scraped(
  "nodejs_eventloop_lag_max_seconds",
  "Longest event loop delay since the previous scrape, in seconds.",
  "gauge",
)

export const processFamilies = runtime.families

// --- Several nodes in one process ---

/**
 * Effect's metric registry is process-wide, but one process may run several nodes (`pico dev cluster`, tests,
 * embedders). Every fiber of a node carries this label (through FiberRef.currentMetricLabels), so a node's
 * /metrics shows its own series only, without the label. The dot keeps it apart from any Prometheus label name.
 */
export const instanceLabelKey = "pico.instance"

/** Runs a node's layer as its own metrics instance. */
export const isolate = <A, E, R>(layer: Layer.Layer<A, E, R>): Layer.Layer<A, E, R> =>
  Layer.locallyWith(layer, FiberRef.currentMetricLabels, (labels) => [
    ...labels,
    MetricLabel.make(instanceLabelKey, randomUUID()),
  ])

/** The current fiber's metric labels: its node's instance label, if any (for series updated outside fibers). */
export const currentLabels: Effect.Effect<ReadonlyArray<MetricLabel.MetricLabel>> = FiberRef.get(
  FiberRef.currentMetricLabels,
)

/**
 * Builds label sets once per value, so code on a hot path can update a labelled metric without allocating:
 * Effect caches a series by the identity of its label array.
 */
export const labelCache = <K>(
  base: ReadonlyArray<MetricLabel.MetricLabel>,
  key: string,
  format: (value: K) => string,
): ((value: K) => ReadonlyArray<MetricLabel.MetricLabel>) => {
  const cache = new Map<K, ReadonlyArray<MetricLabel.MetricLabel>>()
  return (value) => {
    let labels = cache.get(value)
    if (labels === undefined) {
      labels = [...base, MetricLabel.make(key, format(value))]
      cache.set(value, labels)
    }
    return labels
  }
}

/** `base` plus the given labels, for a series updated synchronously (build it once, not per update). */
export const withLabels = (
  base: ReadonlyArray<MetricLabel.MetricLabel>,
  labels: Readonly<Record<string, string>>,
): ReadonlyArray<MetricLabel.MetricLabel> => [
  ...base,
  ...Object.entries(labels).map(([key, value]) => MetricLabel.make(key, value)),
]

/** Counts a refused credential on a port; runs in the refused request's fiber, so it counts for its node. */
export const countAuthFailure = (port: "upstream" | "proxy" | "admin", reason: string): Effect.Effect<void> =>
  Metric.increment(
    Metric.taggedWithLabels(authFailures, [
      MetricLabel.make("port", port),
      MetricLabel.make("reason", reason),
    ]),
  )
