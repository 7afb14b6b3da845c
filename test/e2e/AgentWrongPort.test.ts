import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { startHttpServer } from "../support/http.js"
import { startLoadBalancer } from "../support/loadBalancer.js"
import { listeningPort, type PicoProcess, picoPerTest, spawnPico } from "../support/process.js"

const { pico, cleanups } = picoPerTest(afterEach)

let server: PicoProcess
const ports = { proxy: 0, upstream: 0, admin: 0 }

beforeAll(async () => {
  server = spawnPico([
    "server",
    ...["--proxy.bind-addr", "127.0.0.1:0", "--upstream.bind-addr", "127.0.0.1:0"],
    ...["--admin.bind-addr", "127.0.0.1:0", "--gossip.bind-addr", "127.0.0.1:0"],
  ])
  ports.proxy = await listeningPort(server, "proxy")
  ports.upstream = await listeningPort(server, "upstream")
  ports.admin = await listeningPort(server, "admin")
})

afterAll(() => server?.stop())

const agentAt = (serverUrl: string) =>
  pico(["agent", "--endpoints", "e/127.0.0.1:1", "--server.url", serverUrl])

/** The agent's exit status and its one error line. */
const fatalError = async (agent: PicoProcess) => {
  const code = await agent.exited
  const errors = agent.logs.filter((log) => log.level === "error")
  expect(errors).toHaveLength(1)
  return { code, msg: errors[0]?.msg }
}

const hint = "it must be a Pico node's upstream port (8001 by default)"

/** A web server that is not Pico: every request, WebSocket upgrades included, gets `status` and an HTML page. */
const startWebServer = async (status: number) => {
  const web = await startHttpServer((_req, res) => {
    res.writeHead(status, { "content-type": "text/html; charset=utf-8" })
    res.end("<!doctype html><html><body><h1>It works!</h1>\n<p>Some page</p></body></html>")
  })
  cleanups.push(web.close)
  return web
}

describe("pico agent pointed at the wrong port", () => {
  it("exits 1 at once when --server.url is a Pico proxy port", async () => {
    const url = `http://127.0.0.1:${ports.proxy}`
    expect(await fatalError(agentAt(url))).toEqual({
      code: 1,
      msg: `--server.url ${url} is a Pico proxy port (it answered HTTP 400 Bad Request: missing pico endpoint id); ${hint}`,
    })
  })

  it("exits 1 at once when --server.url is a Pico admin port", async () => {
    const url = `http://127.0.0.1:${ports.admin}`
    expect(await fatalError(agentAt(url))).toEqual({
      code: 1,
      msg: `--server.url ${url} is a Pico admin port (it answered HTTP 404 Not Found: not found); ${hint}`,
    })
  })

  it("exits 1 at once when --server.url is the upstream port with a path no proxy strips", async () => {
    const url = `http://127.0.0.1:${ports.upstream}/some/prefix`
    expect(await fatalError(agentAt(url))).toEqual({
      code: 1,
      msg:
        `--server.url ${url} reached a Pico upstream port at the wrong path (it answered HTTP 404 Not Found: ` +
        "not found); give the node's URL without a path, or the path a proxy in front of it strips",
    })
  })

  it("exits 1 when --server.url is some other web server, without logging its page", async () => {
    const ok = await startWebServer(200)
    const okUrl = `http://127.0.0.1:${ok.port}`
    expect(await fatalError(agentAt(okUrl))).toEqual({
      code: 1,
      msg: `--server.url ${okUrl} is not a Pico upstream port (it answered HTTP 200 OK, text/html); ${hint}`,
    })
    const missing = await startWebServer(404)
    const missingUrl = `http://127.0.0.1:${missing.port}/some/prefix`
    expect(await fatalError(agentAt(missingUrl))).toEqual({
      code: 1,
      msg: `--server.url ${missingUrl} is not a Pico upstream port (it answered HTTP 404 Not Found, text/html); ${hint}`,
    })
  })

  it("keeps retrying while a balancer answers 503 for a restarting node, and connects once it is back", async () => {
    const maintenance = await startWebServer(503)
    let nodeBack = false
    const balancer = await startLoadBalancer(() => [nodeBack ? ports.upstream : maintenance.port])
    cleanups.push(balancer.close)
    const agent = agentAt(`http://127.0.0.1:${balancer.port}`)

    const retrying = await agent.waitForLog("failed to connect to server; retrying")
    // One line with the status, not the balancer's HTML page.
    expect(retrying.error).toBe("HTTP 503 Service Unavailable")
    nodeBack = true
    await agent.waitForLog("connected", 15_000)
    expect(await server.waitForLog("upstream connected")).toMatchObject({ "endpoint-id": "e" })
  })
})
