import { afterEach, describe, expect, it } from "vitest"
import { request, startHttpServer, startInFlightServices, waitFor } from "../support/http.js"
import { picoPerTest } from "../support/process.js"
import { startServerProcess } from "../support/serverProcess.js"

const { pico, cleanups } = picoPerTest(afterEach)

const startAgent = (endpoint: string, upstreamPort: number, servicePort: number) =>
  pico([
    "agent",
    "--endpoints",
    `${endpoint}/127.0.0.1:${servicePort}`,
    "--server.url",
    `http://127.0.0.1:${upstreamPort}`,
  ])

describe("a request forwarded to a node that dies with it in flight", () => {
  // Node 1 holds the endpoint, and its service takes the request and never answers; the client is on node 2.
  // Once the request is in flight, an upstream of node 2's own registers, and node 1 is killed.
  it.each([
    ["POST", 502, "nothing"],
    ["GET", 200, "GET /in-flight"],
  ])(
    "goes to another upstream only if it is idempotent: %s",
    async (method, status, secondSaw) => {
      const { taken, silent, seenBySecond, second } = await startInFlightServices()
      cleanups.push(silent.close, second.close)
      const first = await startServerProcess(pico, [])
      const entry = await startServerProcess(pico, [first.gossipAddr])
      startAgent("e", first.upstreamPort, silent.port)
      const viaEntry = (path: string) =>
        request(`http://127.0.0.1:${entry.proxyPort}${path}`, { method, headers: { "x-pico-endpoint": "e" } })
      await waitFor(
        "node 2 to route the endpoint",
        async () => (await viaEntry("/ready-check")).status === 200,
        15_000,
      )

      const answer = viaEntry("/in-flight")
      await waitFor("node 1's service to have the request", () => taken.includes(`${method} /in-flight`))
      startAgent("e", entry.upstreamPort, second.port)
      await waitFor("node 2's own upstream", () =>
        entry.process.logs.some((log) => log.msg === "upstream connected"),
      )
      first.process.child.kill("SIGKILL")
      const response = await answer
      expect(response.status).toBe(status)
      const forwardedAgain = seenBySecond.filter((line) => line.endsWith("/in-flight"))
      expect(forwardedAgain.length === 0 ? "nothing" : forwardedAgain.join()).toBe(secondSaw)
    },
    30_000,
  )
})

describe("a request waiting for a route", () => {
  it("tries again a node it tried before the route changed: one restarted with its id (--cluster.node-id)", async () => {
    const service = await startHttpServer((_req, res) => res.end("back"))
    cleanups.push(service.close)
    const holder = await startServerProcess(pico, [], ["--cluster.node-id", "kept"])
    const entry = await startServerProcess(pico, [holder.gossipAddr])
    const first = startAgent("e", holder.upstreamPort, service.port)
    const viaEntry = () =>
      request(`http://127.0.0.1:${entry.proxyPort}/`, { headers: { "x-pico-endpoint": "e" } })
    await waitFor("the entry to route the endpoint", async () => (await viaEntry()).status === 200, 15_000)

    // Killed: the entry still routes to it, finds it gone at once (refused), and waits for the route to change;
    // the new process takes a second to start, long after that.
    first.child.kill("SIGKILL")
    holder.process.child.kill("SIGKILL")
    await holder.process.exited
    const answer = viaEntry()
    const restarted = await startServerProcess(pico, [entry.gossipAddr], ["--cluster.node-id", "kept"])
    startAgent("e", restarted.upstreamPort, service.port)
    const response = await answer
    expect([response.status, response.body]).toEqual([200, "back"])
  }, 30_000)
})
