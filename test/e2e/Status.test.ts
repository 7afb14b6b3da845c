import { writeFileSync } from "node:fs"
import { rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import YAML from "yaml"
import { closedPort, request, startHttpServer, waitFor } from "../support/http.js"
import { startAgent, startNode, type TestNode } from "../support/node.js"
import { runPico } from "../support/process.js"
import { connectTcp, startEchoService, startTcpAgent } from "../support/tcp.js"
import { hmacSecret, hmacToken } from "../support/tokens.js"

const cleanups: Array<() => Promise<void>> = []
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** Two nodes as in the getting-started guide: the agent's endpoint is on the first, the CLI asks the second. */
let first: TestNode
let second: TestNode
let upstreamAddr: string

const status = (node: TestNode, ...args: Array<string>) =>
  runPico(["status", ...args, "--server.url", node.adminUrl])

beforeAll(async () => {
  first = await startNode({ "gossip.interval": "50ms", "cluster.node-id": "pico-1-fuvaflv" })
  cleanups.push(first.close)
  second = await startNode({
    "gossip.interval": "50ms",
    "cluster.node-id": "pico-2-rjtlyx1",
    "cluster.join": [first.gossipAddr],
  })
  cleanups.push(second.close)
  const service = await startHttpServer((_req, res) => res.end("ok"))
  cleanups.push(service.close)
  const agent = startAgent(first.upstreamUrl, { "my-endpoint": service.port })
  cleanups.push(agent.stop)
  await waitFor("second sees the endpoint", () => second.routesRemotely("my-endpoint"))
  upstreamAddr = JSON.parse((await request(`${first.adminUrl}/status/proxy/endpoints`)).body)[
    "my-endpoint"
  ][0]
})

const nodeYaml = (node: TestNode, id: string, count: number) =>
  [
    `- id: ${id}`,
    "  status: active",
    `  proxy_addr: 127.0.0.1:${node.proxyPort}`,
    `  admin_addr: 127.0.0.1:${node.adminPort}`,
    `  endpoints: ${count}`,
    `  upstreams: ${count}`,
  ].join("\n")

describe("pico status", () => {
  it("cluster nodes: every node, sorted by id, shaped as in getting started", async () => {
    const run = await status(second, "cluster", "nodes")
    expect(run).toEqual({
      code: 0,
      stdout: `nodes:\n${nodeYaml(first, "pico-1-fuvaflv", 1)}\n${nodeYaml(second, "pico-2-rjtlyx1", 0)}\n`,
      stderr: "",
    })
  })

  it("proxy endpoints --forward <node id>: the upstreams connected to that node", async () => {
    expect(await status(second, "proxy", "endpoints", "--forward", "pico-1-fuvaflv")).toEqual({
      code: 0,
      stdout: `endpoints:\n  my-endpoint:\n  - ${upstreamAddr}\n`,
      stderr: "",
    })
    expect((await status(second, "proxy", "endpoints")).stdout).toBe("endpoints: {}\n")
  })

  it("proxy endpoints: a node with TCP endpoints adds their open connections and bytes each way", async () => {
    const node = await startNode()
    cleanups.push(node.close)
    const echo = await startEchoService()
    cleanups.push(echo.close)
    const agent = startTcpAgent(node.upstreamUrl, { db: echo.port })
    cleanups.push(agent.stop)
    await waitFor("db registered", async () => (await node.upstreamCount("db")) === 1)
    const connection = await connectTcp(node.proxyUrl, "db")
    cleanups.push(async () => void connection.destroy())
    const echoed = new Promise((resolve) => connection.once("data", resolve))
    connection.write("hello")
    await echoed
    const upstream = JSON.parse((await request(`${node.adminUrl}/status/proxy/endpoints`)).body).db[0]
    expect(await status(node, "proxy", "endpoints")).toEqual({
      code: 0,
      stdout: [
        "endpoints:",
        "  db:",
        `  - ${upstream}`,
        "tcp_endpoints:",
        "  db:",
        "    connections: 1",
        "    connections_total: 1",
        "    bytes_from_clients: 5",
        "    bytes_to_clients: 5",
        "",
      ].join("\n"),
      stderr: "",
    })
  })

  it("cluster node <id>: one node with its endpoint map; local is the node asked", async () => {
    const expected = [
      "id: pico-1-fuvaflv",
      "status: active",
      `proxy_addr: 127.0.0.1:${first.proxyPort}`,
      `admin_addr: 127.0.0.1:${first.adminPort}`,
      "endpoints:",
      "  my-endpoint: 1",
      "",
    ].join("\n")
    const runs = await Promise.all([
      status(second, "cluster", "node", "pico-1-fuvaflv"),
      status(first, "cluster", "node", "local"),
    ])
    expect(runs.map((run) => run.stdout)).toEqual([expected, expected])
  })

  it("gossip nodes and gossip node <id>: gossip's view, as the admin API gives it", async () => {
    const nodes = await status(second, "gossip", "nodes")
    const api = JSON.parse((await request(`${second.adminUrl}/status/gossip/nodes`)).body)
    expect(YAML.parse(nodes.stdout)).toEqual({ nodes: api })
    expect(nodes.stdout).toMatch(
      /^nodes:\n- id: pico-1-fuvaflv\n {2}addr: \S+\n {2}status: active\n {2}version: \d+\n/,
    )

    const node = await status(second, "gossip", "node", "pico-1-fuvaflv")
    const parsed = YAML.parse(node.stdout)
    expect(Object.keys(parsed)).toEqual(["id", "addr", "status", "version", "entries"])
    expect(parsed.entries).toContainEqual({
      key: "endpoint:my-endpoint",
      value: "1",
      version: expect.any(Number),
      internal: false,
      deleted: false,
    })
  })

  it("--output json prints the same document as JSON", async () => {
    const [run, yaml] = await Promise.all([
      status(second, "cluster", "nodes", "--output", "json"),
      status(second, "cluster", "nodes"),
    ])
    expect(JSON.parse(run.stdout)).toEqual(YAML.parse(yaml.stdout))
  })

  it("prints one line and exits 1 when the node is unknown or the server cannot be reached", async () => {
    const port = await closedPort()
    const [unknownNode, unknownForward, down, badUrl] = await Promise.all([
      status(second, "cluster", "node", "nobody"),
      status(second, "cluster", "nodes", "--forward", "nobody"),
      runPico(["status", "cluster", "nodes", "--server.url", `http://127.0.0.1:${port}`]),
      runPico(["status", "gossip", "nodes", "--server.url", "localhost:8002"]),
    ])
    expect(unknownNode).toEqual({
      code: 1,
      stdout: "",
      stderr: "failed to get cluster node nobody: 404 node not found\n",
    })
    expect(unknownForward.stderr).toBe("failed to get cluster nodes: 404 node not found\n")
    expect(down).toEqual({
      code: 1,
      stdout: "",
      stderr: `failed to get cluster nodes: cannot reach 127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}\n`,
    })
    expect([badUrl.code, badUrl.stderr]).toEqual([
      1,
      'invalid config: --server.url: invalid value "localhost:8002": expected an http(s) URL such as http://localhost:8002\n',
    ])
  })

  it("sends --auth.token (or a file: token) to an admin port that requires one", async () => {
    const secured = await startNode({ "admin.auth.token-hmac-secret-key": hmacSecret })
    cleanups.push(secured.close)
    expect((await status(secured, "proxy", "endpoints")).stderr).toBe(
      "failed to get proxy endpoints: 401 missing authorization\n",
    )
    const tokenFile = join(tmpdir(), `pico-status-token-${process.pid}`)
    writeFileSync(tokenFile, `${await hmacToken()}\n`)
    cleanups.push(() => rm(tokenFile, { force: true }))
    const run = await status(secured, "proxy", "endpoints", "--auth.token", `file:${tokenFile}`)
    expect(run).toEqual({ code: 0, stdout: "endpoints: {}\n", stderr: "" })
  })
})
