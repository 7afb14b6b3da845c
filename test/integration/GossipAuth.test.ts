import * as dgram from "node:dgram"
import * as net from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { makeKeyring } from "../../src/ClusterKeys.js"
import { parseHostPort } from "../../src/Domain/Address.js"
import * as Message from "../../src/Gossip/Message.js"
import * as Seal from "../../src/Gossip/Seal.js"
import { request, startHttpServer, waitFor } from "../support/http.js"
import { startLoadBalancer } from "../support/loadBalancer.js"
import { startAgent, startNode, type TestNode } from "../support/node.js"
import { readMetrics, valueOf } from "../support/prometheus.js"
import { newClusterKey } from "../support/tokens.js"

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const fast = { "gossip.interval": "50ms" }

const started = async (flags: Record<string, unknown>) => {
  const node = await startNode({ ...fast, ...flags })
  cleanups.push(node.close)
  return node
}

const getJson = async (url: string) => JSON.parse((await request(url)).body)

const rejected = async (node: TestNode, reason: Seal.RejectReason) =>
  valueOf(
    readMetrics((await request(`${node.adminUrl}/metrics`)).body),
    "pico_gossip_rejected_messages_total",
    { reason },
  ) ?? 0

const gossipIds = async (node: TestNode): Promise<Array<string>> =>
  (await getJson(`${node.adminUrl}/status/gossip/nodes`)).map((entry: { id: string }) => entry.id)

/** The ids of the nodes this node sees active, itself included. */
const activeIds = async (node: TestNode): Promise<Array<string>> =>
  (await getJson(`${node.adminUrl}/status/cluster/nodes`))
    .filter((entry: { status: string }) => entry.status === "active")
    .map((entry: { id: string }) => entry.id)
    .sort()

const proxied = (node: TestNode, endpointId: string) =>
  request(`${node.proxyUrl}/`, { headers: { "x-pico-endpoint": endpointId } })

// --- The attacker ---

const attackerProxy = "127.0.0.1:9"

/**
 * The forgery that took over an endpoint before gossip was authenticated: a node "evil-node" with the attacker's
 * proxy address and a million upstreams for pay-ep, and a newer proxy_addr for a real node.
 */
const forgedDelta = (attackerGossip: string, victim: TestNode) =>
  Message.encode({
    _tag: "Delta",
    from: { id: "evil-node", addr: attackerGossip, heartbeat: 1 },
    nodes: [
      {
        id: "evil-node",
        addr: attackerGossip,
        heartbeat: 1,
        after: 0,
        entries: [
          ["proxy_addr", attackerProxy, 1, 0],
          ["endpoint:pay-ep", "1000000", 2, 0],
        ],
      },
      {
        id: victim.nodeId,
        addr: victim.gossipAddr,
        heartbeat: 1_000_000,
        after: 0,
        entries: [["proxy_addr", attackerProxy, 1_000_000, 0]],
      },
    ],
  })

const sendDatagrams = async (to: string, packets: ReadonlyArray<Uint8Array>) => {
  const target = parseHostPort(to) as { host: string; port: number }
  const socket = dgram.createSocket("udp4")
  for (const packet of packets)
    await new Promise<void>((resolve, reject) =>
      socket.send(packet, target.port, target.host, (error) => (error ? reject(error) : resolve())),
    )
  socket.close()
}

/** One gossip request stream (4-byte length, payload) and whatever comes back before the close. */
const sendRequest = (to: string, payload: Uint8Array) =>
  new Promise<Buffer>((resolve, reject) => {
    const target = parseHostPort(to) as { host: string; port: number }
    const socket = net.connect(target.port, target.host)
    const chunks: Array<Buffer> = []
    socket.on("data", (chunk: Buffer) => chunks.push(chunk))
    socket.on("error", reject)
    socket.on("close", () => resolve(Buffer.concat(chunks)))
    const length = Buffer.alloc(4)
    length.writeUInt32BE(payload.length)
    socket.end(Buffer.concat([length, payload]))
  })

/** A two-node cluster with pay-ep served on the first: both route it, to the real service. */
const startPayCluster = async (flags: Record<string, unknown>) => {
  const service = await startHttpServer((_req, res) => res.end("real service"))
  cleanups.push(service.close)
  const a = await started(flags)
  const b = await started({ ...flags, "cluster.join": [a.gossipAddr] })
  const agent = startAgent(a.upstreamUrl, { "pay-ep": service.port })
  cleanups.push(agent.stop)
  await waitFor("pay-ep routed from b", () => b.routesRemotely("pay-ep"))
  return { a, b }
}

describe("authenticated gossip", () => {
  it("ignores forged gossip on a keyed cluster: no new node, no new route, no rewritten address", async () => {
    const clusterKey = newClusterKey()
    const { a, b } = await startPayCluster({ "gossip.secret-key": [clusterKey] })
    const attacker = "127.0.0.1:40999"
    const forged = forgedDelta(attacker, b)
    const [wrongKey] = makeKeyring([newClusterKey()]).subkeys("gossip") as [Buffer]
    const now = Date.now()
    await sendDatagrams(a.gossipAddr, [
      forged,
      Seal.seal(wrongKey, "datagram", forged, now),
      Buffer.from("no gossip at all"),
      Buffer.from(Seal.seal(wrongKey, "datagram", forged, now).subarray(0, 40)),
    ])
    const refusals = await Promise.all([
      sendRequest(a.gossipAddr, forged),
      sendRequest(a.gossipAddr, Seal.seal(wrongKey, "request", forged, now)),
    ])
    expect(refusals.map((answer) => answer.subarray(5).toString())).toEqual(["unauthenticated", "bad_seal"])

    // Every forgery arrived, and was dropped for the reason it deserved.
    await waitFor(
      "forgeries counted",
      async () => (await rejected(a, "unauthenticated")) === 3 && (await rejected(a, "bad_seal")) === 3,
    )
    for (const node of [a, b]) {
      expect(await gossipIds(node)).toEqual([a.nodeId, b.nodeId].sort())
      const response = await proxied(node, "pay-ep")
      expect([response.status, response.body]).toEqual([200, "real service"])
    }
    const seenOfB = await getJson(`${a.adminUrl}/status/cluster/nodes/${b.nodeId}`)
    expect(seenOfB.proxy_addr).toBe(`127.0.0.1:${b.proxyPort}`)
    expect(await getJson(`${a.adminUrl}/status`)).toEqual({
      id: a.nodeId,
      gossip: { authenticated: true, keys: 1 },
    })
  })

  it("falls for the same forgery without a key, which is why deploys set one", async () => {
    const { a, b } = await startPayCluster({})
    expect(await getJson(`${a.adminUrl}/status`)).toEqual({
      id: a.nodeId,
      gossip: { authenticated: false, keys: 0 },
    })
    await sendDatagrams(a.gossipAddr, [forgedDelta("127.0.0.1:40999", b)])
    await waitFor("the forged node is believed", async () => (await gossipIds(a)).includes("evil-node"))
    // Its route to the attacker's proxy: a node nobody speaks against. (The rewrite of b's own address is undone
    // by b, which catches up past what a peer says of it while it is new, but a node that has run a while does not.)
    const seenOfEvil = await getJson(`${a.adminUrl}/status/gossip/nodes/evil-node`)
    expect(seenOfEvil.entries).toContainEqual(
      expect.objectContaining({ key: "proxy_addr", value: attackerProxy }),
    )
    expect(seenOfEvil.entries).toContainEqual(
      expect.objectContaining({ key: "endpoint:pay-ep", value: "1000000" }),
    )
  })

  it("takes an address no datagram can reach (port 0) as a lost packet: rounds go on and agents register", async () => {
    const node = await started({})
    const packetsOut = async () =>
      valueOf(
        readMetrics((await request(`${node.adminUrl}/metrics`)).body),
        "pico_gossip_packets_outbound_total",
      ) ?? 0
    await sendDatagrams(node.gossipAddr, [
      Message.encode({
        _tag: "Digest",
        from: { id: "prober", addr: "127.0.0.1:9", heartbeat: 1 },
        nodes: [["zero-port", "127.0.0.1:0", 0, 1, 0]],
      }),
    ])
    await waitFor("the node learns of it", async () => (await gossipIds(node)).includes("zero-port"))
    // A datagram to port 0 used to throw, which ended the round loop (and the pushes registrations make) for good.
    const before = await packetsOut()
    await waitFor("twenty more rounds' packets", async () => (await packetsOut()) >= before + 20)
    const service = await startHttpServer((_req, res) => res.end("still routing"))
    cleanups.push(service.close)
    const agent = startAgent(node.upstreamUrl, { e: service.port })
    cleanups.push(agent.stop)
    await waitFor("the agent registered", async () => (await node.upstreamCount("e")) === 1)
    expect((await proxied(node, "e")).body).toBe("still routing")
  })

  it("keeps out a node with the wrong key: its join is refused, and it runs alone or not at all", async () => {
    const a = await started({ "gossip.secret-key": [newClusterKey()] })
    const joining = { "cluster.join": [a.gossipAddr], "cluster.join-timeout": "1s" }
    await expect(startNode({ ...fast, ...joining, "gossip.secret-key": [newClusterKey()] })).rejects.toThrow(
      /join failed: 127\.0\.0\.1:\d+: refused: the peer has none of this node's keys/,
    )
    await expect(startNode({ ...fast, ...joining })).rejects.toThrow(
      /join failed: 127\.0\.0\.1:\d+: refused: the peer requires --gossip.secret-key/,
    )
    const loner = await started({
      ...joining,
      "gossip.secret-key": [newClusterKey()],
      "cluster.abort-if-join-fails": "false",
    })
    await waitFor("a drops the loner's gossip", async () => (await rejected(a, "bad_seal")) > 1)
    expect(await gossipIds(a)).toEqual([a.nodeId])
    expect(await gossipIds(loner)).toEqual([loner.nodeId])
  })

  it("rotates from key A to key B with rolling restarts, the cluster whole, routing and dropping nothing", async () => {
    const [keyA, keyB] = [newClusterKey(), newClusterKey()]
    const service = await startHttpServer((_req, res) => res.end("ok"))
    cleanups.push(service.close)
    const nodes: Array<TestNode> = []
    const closing = new Set<TestNode>()
    const start = (keys: ReadonlyArray<string>, join: ReadonlyArray<TestNode>) =>
      started({
        "gossip.secret-key": keys,
        "cluster.join": join.map((peer) => peer.gossipAddr),
        // A refused join fails the step at once rather than retrying for a minute.
        "cluster.join-timeout": "5s",
      })
    nodes.push(await start([keyA], []))
    for (let i = 1; i < 3; i++) nodes.push(await start([keyA], [nodes[0] as TestNode]))
    const balancer = await startLoadBalancer(() =>
      nodes.filter((node) => !closing.has(node)).map((node) => node.upstreamPort),
    )
    cleanups.push(balancer.close)
    const agent = startAgent(`http://127.0.0.1:${balancer.port}`, { e: service.port })
    cleanups.push(agent.stop)

    /**
     * Every node sees exactly the live nodes active, answers for the endpoint, and has dropped no gossip: at each
     * step every node accepts the key every other one sends with.
     */
    const whole = async (step: string) => {
      const ids = nodes.map((node) => node.nodeId).sort()
      await waitFor(`${step}: every node sees every other`, async () => {
        for (const node of nodes) if ((await activeIds(node)).join() !== ids.join()) return false
        return true
      })
      await waitFor(`${step}: every node routes e`, async () => {
        for (const node of nodes) if ((await proxied(node, "e")).status !== 200) return false
        return true
      })
      for (const node of nodes) {
        for (let i = 0; i < 5; i++) expect((await proxied(node, "e")).body, step).toBe("ok")
        for (const reason of Seal.rejectReasons)
          expect(await rejected(node, reason), `${step}: ${reason}`).toBe(0)
      }
    }
    await whole("keys A")

    // Traffic through the live nodes for the whole roll. Drains lose requests for reasons of their own (the
    // proxy's, not the keys'): those are reported, and the assertions are on the steps.
    const outcomes: Array<string> = []
    let rolling = true
    let inFlight: Promise<unknown> = Promise.resolve()
    const traffic = (async () => {
      for (let i = 0; rolling; i++) {
        const live = nodes.filter((node) => !closing.has(node))
        const sent = proxied(live[i % live.length] as TestNode, "e")
        inFlight = sent.catch(() => undefined)
        outcomes.push(
          await sent.then(
            (response) => (response.status === 200 ? "ok" : `${response.status} ${response.body}`),
            (error: Error) => error.message,
          ),
        )
        // Paced, so the traffic does not starve the nodes it measures.
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    })()

    for (const [step, keys] of [
      ["keys A,B", [keyA, keyB]],
      ["keys B,A", [keyB, keyA]],
      ["keys B", [keyB]],
    ] as const) {
      for (let i = 0; i < nodes.length; i++) {
        const old = nodes[i] as TestNode
        closing.add(old)
        // Clients stop choosing the node; a request already on its way to it is let through first.
        await inFlight
        await old.close()
        nodes[i] = await start(
          keys,
          nodes.filter((node) => node !== old),
        )
        await whole(`${step}, node ${i} restarted`)
      }
      for (const node of nodes)
        expect((await getJson(`${node.adminUrl}/status`)).gossip).toEqual({
          authenticated: true,
          keys: keys.length,
        })
    }
    rolling = false
    await traffic
    const lost = outcomes.filter((outcome) => outcome !== "ok")
    console.log(`key rotation: ${lost.length} of ${outcomes.length} requests during the roll lost`, lost)

    // The old key is out: a node that has only it cannot join any more.
    await expect(
      startNode({
        ...fast,
        "gossip.secret-key": [keyA],
        "cluster.join": [nodes[0]?.gossipAddr],
        "cluster.join-timeout": "1s",
      }),
    ).rejects.toThrow(/refused: the peer has none of this node's keys/)
  })
})
