import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { processFamilies, serverFamilies } from "../../src/Metrics.js"
import { request, startHttpServer, waitFor } from "../support/http.js"
import { startAgent, startNode, type TestNode } from "../support/node.js"
import { checkWithPromtool, readMetrics, valueOf } from "../support/prometheus.js"
import { hmacSecret, hmacToken } from "../support/tokens.js"

const cleanups: Array<() => Promise<void>> = []
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const scrape = async (node: TestNode, headers: Record<string, string> = {}) => {
  const response = await request(`${node.adminUrl}/metrics`, { headers })
  expect(response.status).toBe(200)
  expect(response.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8")
  return response.body
}

/** Three nodes in one process (as `pico dev cluster` runs them): a holds endpoint "e", b forwards to it. */
let a: TestNode
let b: TestNode
let c: TestNode

beforeAll(async () => {
  const fast = { "gossip.interval": "50ms" }
  a = await startNode({ ...fast, "cluster.node-id": "metrics-a" })
  cleanups.push(a.close)
  b = await startNode({ ...fast, "cluster.node-id": "metrics-b", "cluster.join": [a.gossipAddr] })
  cleanups.push(b.close)
  c = await startNode({
    ...fast,
    "cluster.node-id": "metrics-c",
    "cluster.join": [a.gossipAddr],
    "admin.auth.token-hmac-secret-key": hmacSecret,
  })
  cleanups.push(c.close)
  const service = await startHttpServer((req, res) => {
    res.statusCode = req.url === "/missing" ? 404 : 200
    res.end()
  })
  cleanups.push(service.close)
  const agent = startAgent(a.upstreamUrl, { e: service.port })
  cleanups.push(agent.stop)
  await waitFor("route to e", () => b.routesRemotely("e"))
  // c joined through a, so b may hear of it only a gossip round later.
  await waitFor(
    "b knows every node",
    async () => valueOf(readMetrics(await scrape(b)), "pico_cluster_nodes", { status: "active" }) === 3,
  )

  const proxied = (node: TestNode, path: string, endpointId = "e") =>
    request(`${node.proxyUrl}${path}`, { headers: { "x-pico-endpoint": endpointId } })
  await proxied(a, "/")
  await proxied(a, "/missing")
  await proxied(b, "/")
  await proxied(b, "/", "nobody")
  await request(`${c.adminUrl}/status/cluster/nodes`)
  // A request is recorded when its response closes, which may be just after the client has read it.
  const recorded = async (node: TestNode) =>
    valueOf(readMetrics(await scrape(node)), "pico_proxy_request_duration_seconds_count")
  await waitFor("requests recorded", async () => (await recorded(a)) === 3 && (await recorded(b)) === 2)
})

describe("/metrics", () => {
  it("declares every server and process family with its type, in Prometheus text format", async () => {
    const families = readMetrics(await scrape(a))
    for (const declared of [...serverFamilies, ...processFamilies]) {
      expect(families.get(declared.name)?.type, declared.name).toBe(declared.type)
      expect(families.get(declared.name)?.help).toBe(declared.help)
    }
    expect([...families.keys()].filter((name) => name.startsWith("effect_"))).toEqual([])
  })

  it("passes promtool check metrics", async () => {
    for (const node of [a, b]) expect(checkWithPromtool(await scrape(node))).toBe("")
  })

  it("counts each node's own requests, forwards and upstreams", async () => {
    const atA = readMetrics(await scrape(a))
    const atB = readMetrics(await scrape(b))
    const atC = readMetrics(await scrape(c, { authorization: `Bearer ${await hmacToken()}` }))
    // a served two requests of its own and b's forwarded one, all through its upstream.
    expect(valueOf(atA, "pico_proxy_forwarded_local_total")).toBe(3)
    expect(valueOf(atA, "pico_proxy_requests_total", { status: "200" })).toBe(2)
    expect(valueOf(atA, "pico_proxy_requests_total", { status: "404" })).toBe(1)
    expect(valueOf(atA, "pico_proxy_request_duration_seconds_count")).toBe(3)
    expect(valueOf(atA, "pico_proxy_connected_upstreams")).toBe(1)
    expect(valueOf(atA, "pico_proxy_registered_endpoints")).toBe(1)
    expect(valueOf(atA, "pico_upstream_connections_total")).toBe(1)
    expect(valueOf(atA, "pico_upstream_disconnects_total")).toBe(0)

    expect(valueOf(atB, "pico_proxy_forwarded_remote_total", { node_id: "metrics-a" })).toBe(1)
    expect(valueOf(atB, "pico_proxy_forwarded_local_total")).toBe(0)
    expect(valueOf(atB, "pico_proxy_requests_total", { status: "200" })).toBe(1)
    expect(valueOf(atB, "pico_proxy_requests_total", { status: "503" })).toBe(1)

    expect(valueOf(atC, "pico_proxy_request_duration_seconds_count")).toBe(0)
    expect(valueOf(atC, "pico_auth_failures_total", { port: "admin", reason: "missing authorization" })).toBe(
      1,
    )
  })

  it("mirrors the cluster and gossip state", async () => {
    const families = readMetrics(await scrape(b))
    expect(valueOf(families, "pico_cluster_nodes", { status: "active" })).toBe(3)
    expect(valueOf(families, "pico_cluster_nodes", { status: "left" })).toBe(0)
    const live = { deleted: "false", internal: "false" }
    // proxy_addr, admin_addr and endpoint:e
    expect(valueOf(families, "pico_gossip_entries", { node_id: "metrics-a", ...live })).toBe(3)
    expect(valueOf(families, "pico_gossip_bytes_inbound_total")).toBeGreaterThan(0)
    expect(valueOf(families, "pico_gossip_packets_outbound_total")).toBeGreaterThan(0)
    expect(valueOf(families, "process_resident_memory_bytes")).toBeGreaterThan(0)
  })
})
