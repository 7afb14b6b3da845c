import { afterEach, describe, expect, it } from "vitest"
import { request, startHttpServer } from "../support/http.js"
import { listeningPort, picoPerTest } from "../support/process.js"
import { startTinyproxy } from "../support/tinyproxy.js"
import { makeCertificates } from "../support/tls.js"

const { pico, cleanups } = picoPerTest(afterEach)

const loopbackPorts = [
  ...["--proxy.bind-addr", "127.0.0.1:0", "--upstream.bind-addr", "127.0.0.1:0"],
  ...["--admin.bind-addr", "127.0.0.1:0", "--gossip.bind-addr", "127.0.0.1:0"],
]

/** A local service and a pico server, with extra server flags (TLS on the upstream port). */
const startServer = async (upstreamTls: ReadonlyArray<string> = []) => {
  const service = await startHttpServer((req, res) => res.end(`proxied ${req.url}`))
  cleanups.push(service.close)
  const server = pico(["server", ...loopbackPorts, ...upstreamTls])
  return {
    servicePort: service.port,
    proxyPort: await listeningPort(server, "proxy"),
    upstreamPort: await listeningPort(server, "upstream"),
  }
}

const startProxy = async (basicAuth?: { user: string; password: string }) => {
  const proxy = await startTinyproxy(basicAuth)
  cleanups.push(async () => void (await proxy.stop()))
  return proxy
}

describe("pico agent behind an HTTP forward proxy", () => {
  it("reaches a wss:// server through HTTPS_PROXY with CONNECT, TLS end to end; NO_PROXY bypasses the proxy", async () => {
    const certs = makeCertificates()
    const { servicePort, proxyPort, upstreamPort } = await startServer([
      ...["--upstream.tls.cert-file", certs.serverCert, "--upstream.tls.key-file", certs.serverKey],
    ])
    const proxy = await startProxy()
    const agentFlags = (endpointId: string) => [
      "agent",
      ...["--endpoints", `${endpointId}/127.0.0.1:${servicePort}`],
      // The agent checks the server's certificate against the private CA: a proxy reading the traffic could not
      // present one, so connecting at all shows the TLS session runs from the agent to the server.
      ...["--server.url", `https://localhost:${upstreamPort}`, "--server.tls.ca-file", certs.caFile],
    ]

    const agent = pico(agentFlags("via-proxy"), { env: { HTTPS_PROXY: `http://127.0.0.1:${proxy.port}` } })
    await agent.waitForLog("connected")
    expect(proxy.connects()).toEqual([`localhost:${upstreamPort}`])
    expect(await agent.waitForLog("reaching the server through a forward proxy")).toMatchObject({
      proxy: `127.0.0.1:${proxy.port}`,
      from: "HTTPS_PROXY",
    })
    const response = await request(`http://127.0.0.1:${proxyPort}/a`, {
      headers: { "x-pico-endpoint": "via-proxy" },
    })
    expect(response.body).toBe("proxied /a")

    // The lower-case forms, as curl reads them: no_proxy names the server's host, so the proxy is not asked.
    const direct = pico(agentFlags("direct"), {
      env: { https_proxy: `http://127.0.0.1:${proxy.port}`, no_proxy: "example.com,localhost" },
    })
    await direct.waitForLog("connected")
    expect(direct.logs.some((log) => log.msg === "reaching the server through a forward proxy")).toBe(false)
    expect(proxy.connects()).toEqual([`localhost:${upstreamPort}`])
    const bypassed = await request(`http://127.0.0.1:${proxyPort}/b`, {
      headers: { "x-pico-endpoint": "direct" },
    })
    expect(bypassed.body).toBe("proxied /b")
  })

  it("reaches a ws:// server through HTTP_PROXY, with the proxy's credentials from its URL", async () => {
    const { servicePort, proxyPort, upstreamPort } = await startServer()
    const proxy = await startProxy({ user: "pico", password: "s3cret" })
    const agentFlags = (endpointId: string) => [
      "agent",
      ...["--endpoints", `${endpointId}/127.0.0.1:${servicePort}`],
      ...["--server.url", `http://127.0.0.1:${upstreamPort}`],
    ]

    const agent = pico(agentFlags("with-credentials"), {
      env: { HTTP_PROXY: `http://pico:s3cret@127.0.0.1:${proxy.port}` },
    })
    await agent.waitForLog("connected")
    expect(proxy.connects()).toEqual([`127.0.0.1:${upstreamPort}`])
    const response = await request(`http://127.0.0.1:${proxyPort}/c`, {
      headers: { "x-pico-endpoint": "with-credentials" },
    })
    expect(response.body).toBe("proxied /c")

    // Wrong credentials: the proxy's refusal is one retried warning line, and the password never shows.
    const refused = pico(agentFlags("wrong-credentials"), {
      env: { HTTP_PROXY: `http://pico:wrong-password@127.0.0.1:${proxy.port}` },
    })
    const warning = await refused.waitForLog("failed to connect to server; retrying")
    // tinyproxy answers bad credentials with 401 (most proxies say 407 Proxy Authentication Required).
    expect(warning.error).toBe(
      `proxy http://127.0.0.1:${proxy.port}: refused CONNECT 127.0.0.1:${upstreamPort}: 401 Unauthorized`,
    )
    expect(JSON.stringify(refused.logs)).not.toContain("wrong-password")
    expect(refused.child.exitCode).toBe(null)
  })

  it("exits 1 naming the variable when the proxy is not an http:// URL, without echoing its password", async () => {
    const agent = pico(["agent", "--endpoints", "e/4000", "--server.url", "https://pico.example.com"], {
      env: { HTTPS_PROXY: "socks5://user:hunter2@proxy.internal:1080" },
    })
    expect(await agent.exited).toBe(1)
    expect(agent.text().trim()).toBe(
      'invalid config: HTTPS_PROXY "socks5://(redacted)@proxy.internal:1080": only http:// proxies are supported (the tunnel\'s TLS runs inside CONNECT)',
    )
  })

  it("goes on through the proxy past a NO_PROXY range that is not one (it used to exit 1 without a word)", async () => {
    const agent = pico(["agent", "--endpoints", "e/4000", "--server.url", "http://10.1.2.3:8001"], {
      env: { HTTP_PROXY: "http://127.0.0.1:9", NO_PROXY: "10.0.0.0/99" },
    })
    const warning = await agent.waitForLog("failed to connect to server; retrying")
    expect(String(warning.error)).toContain("proxy http://127.0.0.1:9")
    expect(agent.child.exitCode).toBe(null)
  })
})
