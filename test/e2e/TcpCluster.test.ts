import { afterEach, describe, expect, it } from "vitest"
import { forwardArgs, forwardedPort } from "../support/forward.js"
import { request, waitFor } from "../support/http.js"
import { startLoadBalancer } from "../support/loadBalancer.js"
import { picoPerTest } from "../support/process.js"
import { type ServerProcess, startServerProcess } from "../support/serverProcess.js"
import { psqlArgs, psqlSession, run, startPostgres } from "../support/services.js"

const { pico, cleanups } = picoPerTest(afterEach)

const GRACE_MS = 3_000

/** A `pico server` joining `join`, whose drain lasts GRACE_MS. */
const startServer = (join: ReadonlyArray<ServerProcess>) =>
  startServerProcess(
    pico,
    join.map((node) => node.gossipAddr),
    ["--server.graceful-shutdown-timeout", `${GRACE_MS / 1000}s`],
  )

/** Whether `node` knows, through gossip, that `holder` holds the endpoint. */
const knowsEndpoint = async (
  node: ServerProcess,
  holder: ServerProcess,
  endpointId: string,
): Promise<boolean> => {
  const answer = await request(`http://127.0.0.1:${node.adminPort}/status/cluster/nodes/${holder.nodeId}`)
  return answer.status === 200 && JSON.parse(answer.body).endpoints[endpointId] === 1
}

describe("TCP endpoints across a cluster", () => {
  it("carry a PostgreSQL session through another node, which keeps it through its drain to the grace period", async () => {
    const postgres = await startPostgres()
    cleanups.push(postgres.stop)
    const first = await startServer([])
    let second = await startServer([first])
    const agent = pico([
      ...["agent", "--endpoints", `db/tcp://127.0.0.1:${postgres.port}`],
      ...["--server.url", `http://127.0.0.1:${first.upstreamPort}`],
    ])
    await agent.waitForLog("connected")
    // Clients reach the nodes through a balancer; it sends this session to the second node, not the agent's.
    let backends = [second.proxyPort]
    const balancer = await startLoadBalancer(() => backends)
    cleanups.push(balancer.close)
    const forward = pico(forwardArgs("db", `http://127.0.0.1:${balancer.port}`))
    const port = await forwardedPort(forward)
    await waitFor("the second node routes db", () => knowsEndpoint(second, first, "db"))

    const session = psqlSession(port)
    cleanups.push(async () => session.close())
    expect(await session.query("SELECT 'through the second node'")).toBe("through the second node")
    const held = JSON.parse((await request(`http://127.0.0.1:${first.adminPort}/status/proxy/tcp`)).body)
    expect(held.db.connections).toBe(1)

    // A rolling restart reaches the second node: SIGTERM starts its drain.
    backends = [second.proxyPort, first.proxyPort]
    const drainStarted = Date.now()
    const draining = second.process.stop()
    await second.process.waitForLog("shutting down: draining")
    const fresh = await run("psql", psqlArgs(port, "-At", "-c", "SELECT 'a new connection'"))
    expect(fresh.stdout).toBe("a new connection\n")
    expect(Date.now() - drainStarted).toBeLessThan(GRACE_MS)

    // The session works, query after query, until the second node's grace period ends, and ends then.
    let answered = 0
    let lostAt: number | undefined
    while (lostAt === undefined) {
      const answer = await session.query(`SELECT 'tick ${answered}'`)
      if (answer === undefined) lostAt = Date.now()
      else {
        expect(answer).toBe(`tick ${answered}`)
        answered++
      }
    }
    expect(lostAt - drainStarted).toBeGreaterThanOrEqual(GRACE_MS - 200)
    expect(lostAt - drainStarted).toBeLessThan(GRACE_MS + 3_000)
    expect(answered).toBeGreaterThan(5)
    expect(await session.exited).toBe(2)
    expect(await draining).toBe(0)
    expect(second.process.logs.find((log) => log.msg === "waiting for pass-through connections")?.open).toBe(
      1,
    )

    // The node comes back, and takes connections again.
    second = await startServer([first])
    backends = [second.proxyPort]
    await waitFor("the restarted node routes db", () => knowsEndpoint(second, first, "db"))
    const again = await run("psql", psqlArgs(port, "-At", "-c", "SELECT 'through the restarted node'"))
    expect(again.stdout).toBe("through the restarted node\n")
  }, 90_000)
})
