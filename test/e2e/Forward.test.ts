import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { forwardArgs, forwardedPort } from "../support/forward.js"
import { listeningPort, picoPerTest } from "../support/process.js"
import { closing, connectLocal, readToEnd, startEchoService } from "../support/tcp.js"
import { makeCertificates } from "../support/tls.js"
import { hmacSecret, hmacToken } from "../support/tokens.js"

const { pico, cleanups } = picoPerTest(afterEach)

const loopbackPorts = [
  ...["--proxy.bind-addr", "127.0.0.1:0", "--upstream.bind-addr", "127.0.0.1:0"],
  ...["--admin.bind-addr", "127.0.0.1:0", "--gossip.bind-addr", "127.0.0.1:0"],
  ...["--server.graceful-shutdown-timeout", "1s"],
]

/** A server (with extra flags), and the start of an agent whose `echo` endpoint is a TCP echo service. */
const startServer = async (serverFlags: ReadonlyArray<string> = []) => {
  const echo = await startEchoService()
  cleanups.push(echo.close)
  const server = pico(["server", ...loopbackPorts, ...serverFlags])
  const upstreamPort = await listeningPort(server, "upstream")
  return {
    proxyPort: await listeningPort(server, "proxy"),
    startAgent: () =>
      pico([
        ...["agent", "--endpoints", `echo/tcp://127.0.0.1:${echo.port}`],
        ...["--server.url", `http://127.0.0.1:${upstreamPort}`],
      ]).waitForLog("connected"),
  }
}

describe("pico forward tcp", () => {
  it("reaches a TCP endpoint through a TLS proxy port that requires a token, read from a file", async () => {
    const certs = makeCertificates()
    const { proxyPort, startAgent } = await startServer([
      ...["--proxy.tls.cert-file", certs.serverCert, "--proxy.tls.key-file", certs.serverKey],
      ...["--proxy.auth.token-hmac-secret-key", hmacSecret],
    ])
    await startAgent()
    const tokenFile = join(certs.dir, "token")
    writeFileSync(tokenFile, `${await hmacToken({ endpoints: ["echo"] })}\n`)
    const proxyUrl = `https://localhost:${proxyPort}`
    const forward = pico(
      forwardArgs(
        "echo",
        proxyUrl,
        "--server.tls.ca-file",
        certs.caFile,
        "--auth.token",
        `file:${tokenFile}`,
      ),
    )
    const local = await connectLocal(await forwardedPort(forward))
    local.end("over TLS, with a token")
    expect((await readToEnd(local)).toString()).toBe("over TLS, with a token")

    // Without the token the proxy refuses: that connection is closed, and the refusal logged in one line.
    const anonymous = pico(forwardArgs("echo", proxyUrl, "--server.tls.ca-file", certs.caFile))
    const refused = await connectLocal(await forwardedPort(anonymous))
    expect(await closing(refused)).toBe("end")
    expect(await anonymous.waitForLog("connection to the endpoint failed")).toMatchObject({
      level: "warn",
      subsystem: "forward",
      "endpoint-id": "echo",
      reason: "refused",
      error: `localhost:${proxyPort} answered 401: missing authorization`,
    })
  })

  it("closes a connection the endpoint cannot take and logs why; the next one is served", async () => {
    const { proxyPort, startAgent } = await startServer()
    const forward = pico(forwardArgs("echo", `http://127.0.0.1:${proxyPort}`))
    const port = await forwardedPort(forward)
    expect(await closing(await connectLocal(port))).toBe("end")
    expect((await forward.waitForLog("connection to the endpoint failed")).error).toBe(
      `127.0.0.1:${proxyPort} answered 503: endpoint not found`,
    )
    await startAgent()
    const served = await connectLocal(port)
    served.end("served once the agent is there")
    expect((await readToEnd(served)).toString()).toBe("served once the agent is there")
  })
})
