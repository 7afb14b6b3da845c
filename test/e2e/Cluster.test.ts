import { afterEach, describe, expect, it } from "vitest"
import { request, startHttpServer, waitFor } from "../support/http.js"
import { picoPerTest } from "../support/process.js"
import { type ServerProcess, startServerProcess } from "../support/serverProcess.js"

const { pico, cleanups } = picoPerTest(afterEach)

/** A real `pico server` on loopback ephemeral ports, gossiping fast, joining `join`. */
const startServer = (join: ReadonlyArray<string>) => startServerProcess(pico, join)

const startAgent = (upstreamPort: number, servicePort: number) =>
  pico([
    "agent",
    "--endpoints",
    `e/127.0.0.1:${servicePort}`,
    "--server.url",
    `http://127.0.0.1:${upstreamPort}`,
  ])

/** Polls until the node answers the endpoint with the service's body. */
const servedBy = (server: ServerProcess) =>
  waitFor(
    `node ${server.nodeId} to route the endpoint`,
    async () =>
      (await request(`http://127.0.0.1:${server.proxyPort}/`, { headers: { "x-pico-endpoint": "e" } }))
        .body === "ok",
    15_000,
  )

describe("a cluster of pico server processes", () => {
  it("routes from every node, recovers from a killed node, and sees a graceful leave", async () => {
    const service = await startHttpServer((_req, res) => res.end("ok"))
    cleanups.push(service.close)
    const first = await startServer([])
    const second = await startServer([first.gossipAddr])
    const third = await startServer([first.gossipAddr])

    const agent = startAgent(first.upstreamPort, service.port)
    await servedBy(second)
    await servedBy(third)

    // Node 1 dies without leaving; the agent reconnects to node 2 (as through a load balancer).
    first.process.child.kill("SIGKILL")
    await first.process.exited
    agent.child.kill("SIGTERM")
    await agent.exited
    startAgent(second.upstreamPort, service.port)
    await servedBy(third)

    // Node 3 leaves gracefully: node 2 hears it as "left".
    expect(await third.process.stop()).toBe(0)
    await waitFor("node 2 to see node 3 leave", () =>
      second.process.logs.some(
        (log) =>
          log.msg === "cluster membership changed" && log.member === third.nodeId && log.status === "left",
      ),
    )
  })
})
