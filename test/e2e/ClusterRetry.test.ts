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

describe("two live server processes with one node id (--cluster.node-id given twice)", () => {
  it("the one outrun warns where the other is, and takes the id back when the other leaves", async () => {
    const olderService = await startHttpServer((_req, res) => res.end("older"))
    const newerService = await startHttpServer((_req, res) => res.end("newer"))
    cleanups.push(olderService.close, newerService.close)
    const entry = await startServerProcess(pico, [])
    const older = await startServerProcess(pico, [entry.gossipAddr], ["--cluster.node-id", "dup"])
    startAgent("older", older.upstreamPort, olderService.port)
    const bodyOf = async (endpoint: string) =>
      (await request(`http://127.0.0.1:${entry.proxyPort}/`, { headers: { "x-pico-endpoint": endpoint } }))
        .body
    await waitFor(
      "the entry to route the older one's endpoint",
      async () => (await bodyOf("older")) === "older",
    )

    const newer = await startServerProcess(pico, [entry.gossipAddr], ["--cluster.node-id", "dup"])
    const newerAgent = startAgent("newer", newer.upstreamPort, newerService.port)
    await waitFor(
      "the entry to route the newer one's endpoint",
      async () => (await bodyOf("newer")) === "newer",
    )
    const warning = await older.process.waitForLog(
      "another live process has this node id; peers route to it, not to this one",
    )
    expect([warning["node-id"], warning["other-addr"]]).toEqual(["dup", newer.gossipAddr])

    // Its agent first: a node holding the only tunnel to an endpoint drains until the grace period ends.
    newerAgent.child.kill("SIGKILL")
    newer.process.child.kill("SIGTERM")
    await newer.process.waitForLog("left cluster")
    await newer.process.exited
    await waitFor(
      "the entry to route the older one's endpoint again",
      async () => (await bodyOf("older")) === "older",
    )
  }, 45_000)
})
