import { afterEach, describe, expect, it } from "vitest"
import { request, startHttpServer, waitFor } from "../support/http.js"
import { loopbackPorts, picoPerTest } from "../support/process.js"

const { pico, cleanups } = picoPerTest(afterEach)

/** The port of one of the dev cluster's balancers, from its "load balancer for <name> listening" line. */
const balancerPort = async (cluster: ReturnType<typeof pico>, name: string): Promise<number> => {
  const log = await cluster.waitForLog(`load balancer for ${name} listening`, 20_000)
  return Number(String(log.addr).split(":").pop())
}

describe("pico dev cluster (docs/getting-started.md)", () => {
  it("serves an endpoint through its balancer whichever node is picked, and names the node of each line", async () => {
    const service = await startHttpServer((_req, res) => res.end("ok"))
    cleanups.push(service.close)
    const cluster = pico(["dev", "cluster", "--nodes", "2", ...loopbackPorts("proxy", "upstream", "admin")])
    const proxyPort = await balancerPort(cluster, "proxy")
    const upstreamPort = await balancerPort(cluster, "upstream")
    pico([
      "agent",
      "--endpoints",
      `e/127.0.0.1:${service.port}`,
      "--server.url",
      `http://127.0.0.1:${upstreamPort}`,
    ])

    // The balancer takes turns: once both nodes route the endpoint, six requests in a row all succeed.
    const six = async () => {
      const answers = await Promise.all(
        Array.from({ length: 6 }, () =>
          request(`http://127.0.0.1:${proxyPort}/`, { headers: { "x-pico-endpoint": "e" } }),
        ),
      )
      return answers.every((answer) => answer.status === 200 && answer.body === "ok")
    }
    await waitFor("both nodes to route the endpoint", six, 20_000)

    const started = cluster.logs
      .filter((log) => log.msg === "node started")
      .map((log) => String(log["node-id"]))
    expect(started).toHaveLength(2)
    const short = (id: string) => /^pico-\d+/.exec(id)?.[0]
    // A node's lines name it; its access lines give its full id instead.
    const fromNodes = cluster.logs.filter((log) => log.msg === "upstream connected")
    expect(fromNodes).toHaveLength(1)
    expect(started.map(short)).toContain(fromNodes[0]?.node)
    const access = cluster.logs.filter((log) => log.subsystem === "access")
    expect(access.length).toBeGreaterThanOrEqual(6)
    for (const line of access) expect(started).toContain(line["node-id"])
    // A membership change names the node it is about as `member`, which leaves `node` to the node writing it.
    const changes = cluster.logs.filter((log) => log.msg === "cluster membership changed")
    expect(changes.length).toBeGreaterThan(0)
    for (const line of changes) {
      expect(started).toContain(line.member)
      expect(started.map(short)).toContain(line.node)
      expect(short(String(line.member))).not.toBe(line.node)
    }
  })
})
