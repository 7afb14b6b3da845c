import { createHash, randomBytes } from "node:crypto"
import { readFileSync } from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import type { AddressInfo } from "node:net"
import type { TLSSocket } from "node:tls"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { request } from "../support/http.js"
import { listeningPort, type PicoProcess, picoPerTest, spawnPico } from "../support/process.js"
import { type Certificates, makeCertificates } from "../support/tls.js"

const { pico } = picoPerTest(afterEach)

/** A body far larger than a tunnel stream's window, so the TLS read path has to wait for the tunnel. */
const big = randomBytes(8 * 1024 * 1024)
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex")

let certs: Certificates
let service: https.Server
let servicePort: number
let server: PicoProcess
let proxyPort: number
let upstreamPort: number

beforeAll(async () => {
  certs = makeCertificates()
  // The service says how it was reached: TLS version and the application protocol the agent offered.
  service = https.createServer(
    { cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey), ALPNProtocols: ["http/1.1"] },
    (req, res) => {
      if (req.url === "/big") return void res.end(big)
      const socket = req.socket as TLSSocket
      res.end(`${socket.getProtocol()} ${socket.alpnProtocol} ${req.url}`)
    },
  )
  await new Promise<void>((resolve) => service.listen(0, "127.0.0.1", resolve))
  servicePort = (service.address() as AddressInfo).port
  server = spawnPico([
    "server",
    ...["--proxy.bind-addr", "127.0.0.1:0", "--upstream.bind-addr", "127.0.0.1:0"],
    ...["--admin.bind-addr", "127.0.0.1:0", "--gossip.bind-addr", "127.0.0.1:0"],
  ])
  proxyPort = await listeningPort(server, "proxy")
  upstreamPort = await listeningPort(server, "upstream")
})

afterAll(async () => {
  await server?.stop()
  service?.closeAllConnections()
  service?.close()
})

/** `pico agent` for one endpoint at the https:// service (named by localhost, as its certificate is). */
const agentFor = (endpointId: string, flags: ReadonlyArray<string>) =>
  pico([
    "agent",
    ...["--endpoints", `${endpointId}/https://localhost:${servicePort}`],
    ...["--server.url", `http://127.0.0.1:${upstreamPort}`],
    ...flags,
  ])

const get = (endpointId: string) =>
  request(`http://127.0.0.1:${proxyPort}/hello`, { headers: { "x-pico-endpoint": endpointId } })

describe("pico agent in front of an https:// service", () => {
  it("speaks TLS to the service, verified against --forwarder.tls.ca-file", async () => {
    const agent = agentFor("tls-ca", ["--forwarder.tls.ca-file", certs.caFile])
    await agent.waitForLog("connected")
    const response = await get("tls-ca")
    expect(response.status).toBe(200)
    expect(response.body).toBe("TLSv1.3 http/1.1 /hello")
    const download = await new Promise<Buffer>((resolve, reject) =>
      http
        .get(`http://127.0.0.1:${proxyPort}/big`, { headers: { "x-pico-endpoint": "tls-ca" } }, (res) => {
          const chunks: Array<Buffer> = []
          res.on("data", (chunk: Buffer) => chunks.push(chunk))
          res.on("end", () => resolve(Buffer.concat(chunks)))
          res.on("error", reject)
        })
        .on("error", reject),
    )
    expect(download.length).toBe(big.length)
    expect(sha256(download)).toBe(sha256(big))
    expect(agent.logs.filter((log) => log.level === "warn")).toEqual([])
  })

  it("refuses a service whose certificate the trusted CAs did not sign, answering 502", async () => {
    // Node's public CAs do not include the test's private CA.
    const agent = agentFor("tls-public", [])
    await agent.waitForLog("connected")
    const response = await get("tls-public")
    expect(response.status).toBe(502)
    expect(JSON.parse(response.body)).toEqual({ error: "upstream unreachable" })
    const failure = await agent.waitForLog("forward failed")
    expect(failure).toMatchObject({
      level: "warn",
      "endpoint-id": "tls-public",
      reason: "upstream unreachable",
    })
    expect(String(failure.detail)).toMatch(/certificate/)
  })

  it("with --forwarder.tls.insecure-skip-verify accepts any certificate, and warns at start", async () => {
    const agent = agentFor("tls-insecure", ["--forwarder.tls.insecure-skip-verify"])
    await agent.waitForLog("connected")
    const warning = agent.logs.find((log) => log.level === "warn")
    expect(warning).toMatchObject({
      subsystem: "agent",
      "endpoint-id": "tls-insecure",
      service: `https://localhost:${servicePort}`,
    })
    expect(String(warning?.msg)).toMatch(/^insecure-skip-verify: not checking the service's TLS certificate/)
    // Logged before the tunnel is up, so an operator sees it first.
    expect(agent.logs.indexOf(warning as Record<string, unknown>)).toBeLessThan(
      agent.logs.findIndex((log) => log.msg === "connected"),
    )
    const response = await get("tls-insecure")
    expect(response.status).toBe(200)
    expect(response.body).toBe("TLSv1.3 http/1.1 /hello")
  })

  it("exits 1 naming the flag when the CA file cannot be read", async () => {
    const agent = agentFor("tls-missing-ca", ["--forwarder.tls.ca-file", `${certs.dir}/nope.pem`])
    expect(await agent.exited).toBe(1)
    expect(agent.text()).toContain(
      `invalid config: --forwarder.tls.ca-file: cannot read ${certs.dir}/nope.pem`,
    )
  })
})
