import { once } from "node:events"
import * as net from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import WebSocket, { WebSocketServer } from "ws"
import { request, startHttpServer, waitFor } from "../support/http.js"
import { startAgent, startNode, type TestNode } from "../support/node.js"
import { hmacSecret, newClusterKey } from "../support/tokens.js"

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** Three in-process nodes gossiping over real UDP/TCP on loopback, the later ones joining the first. */
const startCluster = async (): Promise<ReadonlyArray<TestNode>> => {
  // A cluster key: nodes then prove the requests they forward, so the client's X-Forwarded-* survive the hop.
  const fastGossip = { "gossip.interval": "50ms", "gossip.secret-key": [newClusterKey()] }
  const first = await startNode(fastGossip)
  cleanups.push(first.close)
  const others = await Promise.all(
    [1, 2].map(async () => {
      const node = await startNode({ ...fastGossip, "cluster.join": [first.gossipAddr] })
      cleanups.push(node.close)
      return node
    }),
  )
  return [first, ...others]
}

describe("a cluster of nodes", () => {
  it("routes a request from any node to the node holding the endpoint, streaming bodies across the hop", async () => {
    const nodes = await startCluster()
    const service = await startHttpServer((req, res) => {
      let body = ""
      req.on("data", (chunk: Buffer) => {
        body += chunk.toString()
      })
      // Each node answers Expect: 100-continue itself; the service never sees one, whether a client or a node sent it.
      req.on("end", () =>
        res.end(
          `${req.method} ${req.url} ${body} via ${req.headers["x-forwarded-for"]} expect ${req.headers.expect}`,
        ),
      )
    })
    cleanups.push(service.close)
    const [first, second, third] = nodes as [TestNode, TestNode, TestNode]
    const agent = startAgent(first.upstreamUrl, { e: service.port })
    cleanups.push(agent.stop)
    await waitFor(
      "endpoint known cluster-wide",
      () => second.routesRemotely("e") && third.routesRemotely("e"),
    )

    for (const node of [second, third]) {
      const get = await request(`${node.proxyUrl}/hello`, { headers: { "x-pico-endpoint": "e" } })
      expect(get.status).toBe(200)
      // The client's address survives the hop between nodes.
      expect(get.body).toBe("GET /hello  via 127.0.0.1 expect undefined")
      const post = await request(`${node.proxyUrl}/upload`, {
        method: "POST",
        headers: { "x-pico-endpoint": "e" },
        body: "across the cluster",
      })
      expect(post.body).toBe("POST /upload across the cluster via 127.0.0.1 expect undefined")
    }
    for (const node of [first, second]) {
      const asked = await request(`${node.proxyUrl}/upload`, {
        method: "POST",
        headers: { "x-pico-endpoint": "e", expect: "100-continue" },
        body: "asked first",
      })
      expect(asked.body).toBe("POST /upload asked first via 127.0.0.1 expect undefined")
    }
  })

  it("forwards request after request on one kept-alive connection to the peer without piling up listeners on it", async () => {
    const [first, second] = (await startCluster()) as [TestNode, TestNode, TestNode]
    const service = await startHttpServer((_req, res) => res.end("ok"))
    cleanups.push(service.close)
    const agent = startAgent(first.upstreamUrl, { e: service.port })
    cleanups.push(agent.stop)
    await waitFor("endpoint known on node 2", () => second.routesRemotely("e"))
    const warnings: Array<string> = []
    const onWarning = (warning: Error) => warnings.push(warning.name)
    process.on("warning", onWarning)
    cleanups.push(async () => void process.off("warning", onWarning))
    // Sequential requests reuse the one pooled socket: anything registered on it per request would pass Node's
    // limit of 10 listeners.
    for (let i = 0; i < 15; i++) {
      const response = await request(`${second.proxyUrl}/`, { headers: { "x-pico-endpoint": "e" } })
      expect(response.body).toBe("ok")
    }
    // Node emits the warning on the next tick.
    await new Promise((resolve) => setImmediate(resolve))
    expect(warnings).not.toContain("MaxListenersExceededWarning")
  })

  it("carries WebSockets across the hop: a client on node 2 or 3 talks to an upstream on node 1", async () => {
    const nodes = await startCluster()
    const service = await startHttpServer((_req, res) => res.end())
    cleanups.push(service.close)
    const wss = new WebSocketServer({ server: service.server })
    wss.on("connection", (socket, req) => {
      socket.send(`hello ${req.url} from ${req.headers["x-forwarded-for"]}`)
      socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }))
    })
    cleanups.push(async () => wss.close())
    const [first, second, third] = nodes as [TestNode, TestNode, TestNode]
    const agent = startAgent(first.upstreamUrl, { ws: service.port })
    cleanups.push(agent.stop)
    await waitFor(
      "endpoint known cluster-wide",
      () => second.routesRemotely("ws") && third.routesRemotely("ws"),
    )

    for (const node of [second, third]) {
      const client = new WebSocket(`ws://127.0.0.1:${node.proxyPort}/chat`, {
        headers: { host: "ws.example.com" },
      })
      const received: Array<string> = []
      await new Promise<void>((resolve, reject) => {
        client.on("message", (data) => {
          received.push(data.toString())
          if (received.length === 1) client.send("echo across nodes")
          else resolve()
        })
        client.on("error", reject)
      })
      client.close()
      expect(received).toEqual(["hello /chat from 127.0.0.1", "echo across nodes"])
    }
  })

  it("answers 504 when the peer's 100 Continue comes too late, and drops the peer's late answer (it used to crash the node)", async () => {
    // The holder's advertised proxy address is a link that delays every byte by 1.5 s.
    let holderPort = 0
    const links = new Set<net.Socket>()
    const relay = net.createServer((entrySide) => {
      const holderSide = net.connect(holderPort, "127.0.0.1")
      for (const socket of [entrySide, holderSide]) {
        links.add(socket)
        socket.on("error", () => {})
      }
      const slowly = (from: net.Socket, to: net.Socket) =>
        from.on("data", (chunk: Buffer) => setTimeout(() => to.writable && to.write(chunk), 1500))
      slowly(entrySide, holderSide)
      slowly(holderSide, entrySide)
      entrySide.on("close", () => holderSide.destroy())
    })
    relay.listen(0, "127.0.0.1")
    await once(relay, "listening")
    cleanups.push(async () => {
      for (const socket of links) socket.destroy()
      relay.close()
    })
    const fast = { "gossip.interval": "50ms", "gossip.secret-key": [newClusterKey()] }
    const holder = await startNode({
      ...fast,
      "proxy.advertise-addr": `127.0.0.1:${(relay.address() as net.AddressInfo).port}`,
    })
    cleanups.push(holder.close)
    holderPort = holder.proxyPort
    const entry = await startNode({
      ...fast,
      "cluster.join": [holder.gossipAddr],
      "proxy.gateway-timeout": "1s",
    })
    cleanups.push(entry.close)
    const service = await startHttpServer((req, res) => {
      req.resume()
      req.on("end", () => res.end("late"))
    })
    cleanups.push(service.close)
    const agent = startAgent(holder.upstreamUrl, { e: service.port })
    cleanups.push(agent.stop)
    await waitFor("the entry routes to the holder", () => entry.routesRemotely("e"))

    const posted = await request(`${entry.proxyUrl}/`, {
      method: "POST",
      headers: { "x-pico-endpoint": "e" },
      body: "a body held for the peer's 100 Continue",
    })
    expect([posted.status, JSON.parse(posted.body)]).toEqual([504, { error: "endpoint timeout" }])
    // The entry lets go of the request: the peer's 100 Continue and answer, due later, then have nowhere to go.
    // (Kept, they were relayed onto the answered client: writeHead threw, uncaught, and the node exited.)
    await waitFor("the entry's end of the link closed", () => [...links].every((socket) => socket.destroyed))
    expect((await request(`${entry.adminUrl}/health`)).status).toBe(200)
  })

  it("answers 503 everywhere for an endpoint nobody holds, and never forwards twice", async () => {
    const nodes = await startCluster()
    for (const node of nodes) {
      const response = await request(`${node.proxyUrl}/`, { headers: { "x-pico-endpoint": "nobody" } })
      expect([response.status, response.headers["x-pico-error"]]).toEqual([503, "endpoint not found"])
    }
    const forwarded = await request(`${nodes[0]?.proxyUrl}/`, {
      headers: { "x-pico-endpoint": "nobody", "x-pico-forward": "true" },
    })
    expect(forwarded.status).toBe(503)
  })

  it("relays a peer node's own error with its x-pico-error, which a service's answer never carries", async () => {
    const key = newClusterKey()
    // The holder requires a token on its proxy port; the entry node does not, so only the holder can refuse.
    const holder = await startNode({
      "gossip.interval": "50ms",
      "gossip.secret-key": [key],
      "proxy.auth.token-hmac-secret-key": hmacSecret,
    })
    cleanups.push(holder.close)
    const entry = await startNode({
      "gossip.interval": "50ms",
      "gossip.secret-key": [key],
      "cluster.join": [holder.gossipAddr],
    })
    cleanups.push(entry.close)
    const service = await startHttpServer((_req, res) => res.end("ok"))
    cleanups.push(service.close)
    const agent = startAgent(holder.upstreamUrl, { e: service.port })
    cleanups.push(agent.stop)
    await waitFor("endpoint known on the entry node", () => entry.routesRemotely("e"))
    const response = await request(`${entry.proxyUrl}/`, { headers: { "x-pico-endpoint": "e" } })
    expect([response.status, response.headers["x-pico-error"], JSON.parse(response.body)]).toEqual([
      401,
      "missing authorization",
      { error: "missing authorization" },
    ])
  })
})
