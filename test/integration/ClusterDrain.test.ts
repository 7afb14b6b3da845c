import * as http from "node:http"
import { afterEach, describe, expect, it } from "vitest"
import WebSocket, { WebSocketServer } from "ws"
import { closedPort, request, startHttpServer, waitFor } from "../support/http.js"
import { startLoadBalancer } from "../support/loadBalancer.js"
import { startAgent, startNode, type TestNode } from "../support/node.js"

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const fastGossip = { "gossip.interval": "50ms" }

/** A service that echoes the method, path and body, and accepts WebSockets. */
const startEchoService = async () => {
  const service = await startHttpServer((req, res) => {
    let body = ""
    req.on("data", (chunk: Buffer) => {
      body += chunk.toString()
    })
    req.on("end", () => res.end(`${req.method} ${req.url} ${body}`))
  })
  cleanups.push(service.close)
  const wss = new WebSocketServer({ server: service.server })
  wss.on("connection", (socket) => socket.on("message", (data) => socket.send(data)))
  cleanups.push(async () => wss.close())
  return service
}

/**
 * Clients that send requests one after another, each through the balancer, until stopped; half GETs, half POSTs
 * with a body, over kept-alive connections as real clients do. Every answer that is not the service's own counts.
 */
const steadyLoad = (proxyPort: () => number, clients: number) => {
  const agent = new http.Agent({ keepAlive: true })
  let running = true
  let sent = 0
  const lost: Array<string> = []
  const client = async (id: number) => {
    for (let i = 0; running; i++) {
      const post = i % 2 === 1
      const path = `/c${id}/${i}`
      sent++
      try {
        const response = await new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = http.request(
            { port: proxyPort(), host: "127.0.0.1", path, method: post ? "POST" : "GET", agent },
            (res) => {
              let body = ""
              res.on("data", (chunk: Buffer) => {
                body += chunk.toString()
              })
              res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
              res.on("error", reject)
            },
          )
          req.setHeader("host", "e.example.com")
          req.on("error", reject)
          req.end(post ? "payload" : undefined)
        })
        const expected = `${post ? "POST" : "GET"} ${path} ${post ? "payload" : ""}`
        if (response.status !== 200 || response.body !== expected)
          lost.push(`${path}: ${response.status} ${response.body}`)
      } catch (error) {
        lost.push(`${path}: ${(error as Error).message}`)
      }
    }
  }
  const done = Promise.all(Array.from({ length: clients }, (_, id) => client(id)))
  return {
    sent: () => sent,
    lost,
    stop: async () => {
      running = false
      await done
      agent.destroy()
    },
  }
}

describe("joining a cluster", () => {
  it("is not ready, and holds requests for routes it cannot know yet, until it has joined", async () => {
    const service = await startEchoService()
    const [proxyPort, adminPort, gossipPort] = [await closedPort(), await closedPort(), await closedPort()]
    // The node to join is not there yet: the newcomer listens, and keeps retrying the join.
    const joining = startNode({
      ...fastGossip,
      "proxy.bind-addr": `127.0.0.1:${proxyPort}`,
      "admin.bind-addr": `127.0.0.1:${adminPort}`,
      "cluster.join": [`127.0.0.1:${gossipPort}`],
    })
    cleanups.push(async () => (await joining).close())
    await waitFor("listening", () =>
      request(`http://127.0.0.1:${adminPort}/ready`).then(
        () => true,
        () => false,
      ),
    )
    const ready = await request(`http://127.0.0.1:${adminPort}/ready`)
    expect([ready.status, JSON.parse(ready.body)]).toEqual([503, { error: "joining the cluster" }])
    const held = request(`http://127.0.0.1:${proxyPort}/early`, { headers: { host: "e.example.com" } })

    const existing = await startNode({ ...fastGossip, "gossip.bind-addr": `127.0.0.1:${gossipPort}` })
    cleanups.push(existing.close)
    const agent = startAgent(existing.upstreamUrl, { e: service.port })
    cleanups.push(agent.stop)
    expect((await held).body).toBe("GET /early ")
    expect((await request(`http://127.0.0.1:${adminPort}/ready`)).status).toBe(200)
  })
})

describe("draining a node", () => {
  it("loses no request while every node of a cluster restarts in turn", async () => {
    const service = await startEchoService()
    const nodes: Array<TestNode> = []
    const start = async (join: ReadonlyArray<TestNode>) => {
      const node = await startNode({ ...fastGossip, "cluster.join": join.map((peer) => peer.gossipAddr) })
      cleanups.push(node.close)
      return node
    }
    nodes.push(await start([]))
    nodes.push(await start(nodes))
    nodes.push(await start(nodes))
    // The seeds' topology: clients and the agent both reach the nodes through a balancer.
    const proxyBalancer = await startLoadBalancer(() => nodes.map((node) => node.proxyPort))
    const upstreamBalancer = await startLoadBalancer(() => nodes.map((node) => node.upstreamPort))
    cleanups.push(proxyBalancer.close, upstreamBalancer.close)
    const agent = startAgent(`http://127.0.0.1:${upstreamBalancer.port}`, { e: service.port })
    cleanups.push(agent.stop)
    const everyNodeRoutes = async () => {
      for (const node of nodes) {
        const response = await request(`${node.proxyUrl}/probe`, { headers: { host: "e.example.com" } })
        if (response.status !== 200) return false
      }
      return true
    }
    await waitFor("every node routes the endpoint", everyNodeRoutes)

    const load = steadyLoad(() => proxyBalancer.port, 4)
    for (let index = 0; index < nodes.length; index++) {
      const leaving = nodes[index] as TestNode
      const sentBefore = load.sent()
      await leaving.close()
      const others = nodes.filter((node) => node !== leaving)
      const replacement = await start(others)
      nodes[index] = replacement
      await waitFor("the new node joined", async () => {
        for (const node of others)
          if (!(await node.knows(replacement.nodeId)) || !(await replacement.knows(node.nodeId))) return false
        return true
      })
      await waitFor("every node routes the endpoint", everyNodeRoutes)
      // However slow the machine, each restart is crossed by traffic.
      await waitFor("requests flowed across the restart", async () => load.sent() >= sentBefore + 30)
    }
    await load.stop()
    expect(load.lost).toEqual([])
  }, 120_000)

  it("keeps pass-through WebSockets open through the grace period, then closes them with 1001", async () => {
    const service = await startEchoService()
    const node = await startNode({ "server.graceful-shutdown-timeout": "2s" })
    cleanups.push(node.close)
    const agent = startAgent(node.upstreamUrl, { e: service.port })
    cleanups.push(agent.stop)
    await waitFor("agent registered", async () => (await node.upstreamCount("e")) === 1)

    const client = new WebSocket(`ws://127.0.0.1:${node.proxyPort}/`, { headers: { host: "e.example.com" } })
    await new Promise((resolve, reject) => client.once("open", resolve).once("error", reject))
    const closed = new Promise<{ code: number; at: number }>((resolve) =>
      client.once("close", (code) => resolve({ code, at: Date.now() })),
    )
    const echo = (text: string) =>
      new Promise<string>((resolve) => {
        client.once("message", (data) => resolve(data.toString()))
        client.send(text)
      })
    expect(await echo("before")).toBe("before")

    const drainStarted = Date.now()
    const drained = node.close()
    await waitFor("draining", async () => (await request(`${node.adminUrl}/ready`)).status === 503)
    expect(await echo("while draining")).toBe("while draining")
    const { code, at } = await closed
    expect(code).toBe(1001)
    expect(at - drainStarted).toBeGreaterThanOrEqual(1500)
    await drained
  })
})
