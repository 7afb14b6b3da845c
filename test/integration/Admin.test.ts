import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rawExchange, request, startHttpServer, waitFor } from "../support/http.js"
import { startAgent, startNode, type TestAgent, type TestNode } from "../support/node.js"
import { hmacSecret, hmacToken, newClusterKey } from "../support/tokens.js"

const cleanups: Array<() => Promise<void>> = []
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const getJson = async (url: string, headers: Record<string, string> = {}) => {
  const response = await request(url, { headers })
  return { status: response.status, type: response.headers["content-type"], body: JSON.parse(response.body) }
}

/** Three nodes with fixed ids, the later ones joining the first; the first holds endpoint "e". */
let nodes: [TestNode, TestNode, TestNode]
let agent: TestAgent

const clusterNodesSeen = async (node: TestNode) =>
  (await getJson(`${node.adminUrl}/status/cluster/nodes`)).body as Array<{ id: string; upstreams: number }>

beforeAll(async () => {
  const start = async (id: string, join: ReadonlyArray<string>) => {
    const node = await startNode({ "gossip.interval": "50ms", "cluster.node-id": id, "cluster.join": join })
    cleanups.push(node.close)
    return node
  }
  const first = await start("node-a", [])
  nodes = [first, await start("node-b", [first.gossipAddr]), await start("node-c", [first.gossipAddr])]
  const service = await startHttpServer((_req, res) => res.end("ok"))
  cleanups.push(service.close)
  agent = startAgent(first.upstreamUrl, { e: service.port })
  cleanups.push(agent.stop)
  // Every node sees all three, and node-a's upstream.
  await waitFor("cluster converged", async () => {
    for (const node of nodes) {
      const seen = await clusterNodesSeen(node)
      if (seen.length !== 3 || seen[0]?.upstreams !== 1) return false
    }
    return true
  })
})

describe("status routes", () => {
  it("list every node, sorted by id, with addresses and endpoint and upstream counts", async () => {
    const [a, b, c] = nodes
    const row = (node: TestNode, id: string, count: number) => ({
      id,
      status: "active",
      proxy_addr: `127.0.0.1:${node.proxyPort}`,
      admin_addr: `127.0.0.1:${node.adminPort}`,
      endpoints: count,
      upstreams: count,
    })
    const expected = [row(a, "node-a", 1), row(b, "node-b", 0), row(c, "node-c", 0)]
    for (const node of nodes) {
      const response = await getJson(`${node.adminUrl}/status/cluster/nodes`)
      expect([response.status, response.type]).toEqual([200, "application/json"])
      expect(response.body).toEqual(expected)
    }
  })

  it("show one node with its endpoint map, by id or as local, and 404 for an unknown id", async () => {
    const [a, b] = nodes
    const nodeA = {
      id: "node-a",
      status: "active",
      proxy_addr: `127.0.0.1:${a.proxyPort}`,
      admin_addr: `127.0.0.1:${a.adminPort}`,
      endpoints: { e: 1 },
    }
    expect((await getJson(`${a.adminUrl}/status/cluster/nodes/local`)).body).toEqual(nodeA)
    expect((await getJson(`${b.adminUrl}/status/cluster/nodes/node-a`)).body).toEqual(nodeA)
    expect((await getJson(`${a.adminUrl}/status/cluster/nodes/node-b`)).body.endpoints).toEqual({})
    const unknown = await getJson(`${a.adminUrl}/status/cluster/nodes/nobody`)
    expect([unknown.status, unknown.body]).toEqual([404, { error: "node not found" }])
  })

  it("show gossip's view of every node, and one node's entries", async () => {
    const [a, b] = nodes
    const list = (await getJson(`${b.adminUrl}/status/gossip/nodes`)).body as Array<Record<string, unknown>>
    expect(list.map((node) => [node.id, node.status, node.addr])).toEqual([
      ["node-a", "active", a.gossipAddr],
      ["node-b", "active", b.gossipAddr],
      ["node-c", "active", nodes[2].gossipAddr],
    ])
    const detail = (await getJson(`${b.adminUrl}/status/gossip/nodes/node-a`)).body
    expect(detail).toMatchObject({ id: "node-a", addr: a.gossipAddr, status: "active" })
    const entries = detail.entries as Array<{ key: string; value: string; version: number; deleted: boolean }>
    expect(entries).toContainEqual(
      expect.objectContaining({ key: "proxy_addr", value: `127.0.0.1:${a.proxyPort}`, deleted: false }),
    )
    expect(entries).toContainEqual(
      expect.objectContaining({ key: "endpoint:e", value: "1", internal: false }),
    )
    const versions = entries.map((entry) => entry.version)
    expect(versions).toEqual([...versions].sort((x, y) => x - y))
    expect((await getJson(`${b.adminUrl}/status/gossip/nodes/nobody`)).status).toBe(404)
  })

  it("map each local endpoint to the addresses of its upstreams", async () => {
    const [a, b] = nodes
    const endpoints = (await getJson(`${a.adminUrl}/status/proxy/endpoints`)).body
    expect(Object.keys(endpoints)).toEqual(["e"])
    expect(endpoints.e).toEqual([expect.stringMatching(/^127\.0\.0\.1:\d+$/)])
    expect((await getJson(`${b.adminUrl}/status/proxy/endpoints`)).body).toEqual({})
  })

  it("answer 404 JSON for unknown paths and methods", async () => {
    const [a] = nodes
    expect(await getJson(`${a.adminUrl}/status/nothing`)).toMatchObject({
      status: 404,
      body: { error: "not found" },
    })
    const post = await request(`${a.adminUrl}/status/cluster/nodes`, { method: "POST" })
    expect(post.status).toBe(404)
  })

  it("mark every answer as the admin port's, and answer a WebSocket upgrade at once, as a request", async () => {
    const [a] = nodes
    expect((await request(`${a.adminUrl}/health`)).headers["x-pico-admin"]).toBe("1")
    expect((await request(`${a.adminUrl}/status/nothing`)).headers["x-pico-admin"]).toBe("1")
    // An agent pointed here by mistake: the upgrade gets the router's 404, and the connection closes after it.
    const answer = await rawExchange(
      a.adminPort,
      "GET /pico/v1/listener/e HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    expect(answer).toMatch(/^HTTP\/1\.1 404 Not Found\r\n/)
    expect(answer).toMatch(/\r\nx-pico-admin: 1\r\n/)
    expect(answer).toMatch(/\r\n\r\n\{"error":"not found"\}$/)
    const health = await rawExchange(
      a.adminPort,
      "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    expect(health).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
  })
})

describe("?forward=<node id>", () => {
  it("runs any admin request on the named node", async () => {
    const [a, b, c] = nodes
    const direct = (await getJson(`${a.adminUrl}/status/proxy/endpoints`)).body
    for (const via of [b, c]) {
      const forwarded = await getJson(`${via.adminUrl}/status/proxy/endpoints?forward=node-a`)
      expect([forwarded.status, forwarded.body]).toEqual([200, direct])
      const local = await getJson(`${via.adminUrl}/status/cluster/nodes/local?forward=node-a`)
      expect(local.body.id).toBe("node-a")
    }
    // Its own id is handled locally; so are the probes and /metrics of other nodes.
    expect((await getJson(`${b.adminUrl}/status/cluster/nodes/local?forward=node-b`)).body.id).toBe("node-b")
    expect((await request(`${b.adminUrl}/health?forward=node-c`)).status).toBe(200)
    const metrics = await request(`${b.adminUrl}/metrics?forward=node-a`)
    expect(metrics.body).toMatch(/^pico_proxy_connected_upstreams 1$/m)
  })

  it("answers 404 JSON for a node it does not know, and never forwards twice", async () => {
    const [a, b] = nodes
    const unknown = await getJson(`${a.adminUrl}/status/cluster/nodes?forward=nobody`)
    expect([unknown.status, unknown.body]).toEqual([404, { error: "node not found" }])
    const hop = await getJson(`${a.adminUrl}/status/cluster/nodes?forward=node-c`, {
      "x-pico-forward": "true",
    })
    expect(hop.status).toBe(404)
    expect((await getJson(`${b.adminUrl}/status/cluster/nodes?forward=node-c`)).status).toBe(200)
  })
})

describe("?forward= to a node that is gone", () => {
  it("answers 502 JSON while the node is still known", async () => {
    const first = await startNode({ "gossip.interval": "50ms", "cluster.node-id": "gone-a" })
    cleanups.push(first.close)
    const second = await startNode({
      "gossip.interval": "50ms",
      "cluster.node-id": "gone-b",
      "cluster.join": [first.gossipAddr],
    })
    await waitFor("second known", async () => (await clusterNodesSeen(first)).length === 2)
    await second.close()
    // A node that left stays in the view (as "left") until it expires.
    const response = await getJson(`${first.adminUrl}/status/cluster/nodes?forward=gone-b`)
    expect([response.status, response.body]).toEqual([502, { error: "node unreachable" }])
  })
})

describe("?forward= with admin authentication", () => {
  const startSecuredPair = async (clusterKey: ReadonlyArray<string>) => {
    const secured = {
      "gossip.interval": "50ms",
      "admin.auth.token-hmac-secret-key": hmacSecret,
      "gossip.secret-key": clusterKey,
    }
    const first = await startNode({ ...secured, "cluster.node-id": "auth-a" })
    cleanups.push(first.close)
    const second = await startNode({
      ...secured,
      "cluster.node-id": "auth-b",
      "cluster.join": [first.gossipAddr],
    })
    cleanups.push(second.close)
    const authorization = `Bearer ${await hmacToken()}`
    await waitFor(
      "second known",
      async () =>
        (await getJson(`${first.adminUrl}/status/cluster/nodes`, { authorization })).body.length === 2,
    )
    return { url: `${first.adminUrl}/status/cluster/nodes/local?forward=auth-b`, authorization }
  }

  it("checks the caller's token here and passes it on to the target", async () => {
    const { url, authorization } = await startSecuredPair([newClusterKey()])
    expect((await getJson(url)).status).toBe(401)
    const forwarded = await getJson(url, { authorization })
    expect([forwarded.status, forwarded.body.id]).toEqual([200, "auth-b"])
  })

  it("sends the caller's token to no node that unauthenticated gossip may have made up", async () => {
    const { url, authorization } = await startSecuredPair([])
    const refused = await getJson(url, { authorization })
    expect(refused.status).toBe(403)
    expect(refused.body.error).toMatch(/--gossip.secret-key/)
  })
})
