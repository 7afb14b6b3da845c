import { generateKeyPairSync, X509Certificate } from "node:crypto"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as jose from "jose"
import { afterEach, describe, expect, it } from "vitest"
import WebSocket from "ws"
import { afterFirstAnswer, request, startHttpServer, waitFor } from "../support/http.js"
import { listeningPort, loopbackPorts, picoPerTest } from "../support/process.js"
import { makeCertificates } from "../support/tls.js"

const { pico, cleanups } = picoPerTest(afterEach)

describe("pico server and agent with TLS and an RS256 token", () => {
  it("connect over wss with keys from files, and never log the secrets", async () => {
    const certs = makeCertificates()
    const keys = generateKeyPairSync("rsa", { modulusLength: 2048 })
    const publicKeyFile = join(certs.dir, "upstream-public.pem")
    writeFileSync(publicKeyFile, keys.publicKey.export({ type: "spki", format: "pem" }))
    const token = await new jose.SignJWT({ pico: { endpoints: ["secure"] } })
      .setProtectedHeader({ alg: "RS256" })
      .setIssuedAt()
      .setExpirationTime("1h")
      .sign(keys.privateKey)
    const tokenFile = join(certs.dir, "token")
    writeFileSync(tokenFile, `${token}\n`)
    const service = await startHttpServer((req, res) => res.end(`secure ${req.url}`))
    cleanups.push(service.close)

    const server = pico([
      "server",
      ...["--proxy.bind-addr", "127.0.0.1:0", "--upstream.bind-addr", "127.0.0.1:0"],
      ...["--admin.bind-addr", "127.0.0.1:0", "--gossip.bind-addr", "127.0.0.1:0"],
      ...["--upstream.tls.cert-file", certs.serverCert, "--upstream.tls.key-file", certs.serverKey],
      ...["--auth.token-rsa-public-key", `file:${publicKeyFile}`],
    ])
    const proxyPort = await listeningPort(server, "proxy")
    const upstreamPort = await listeningPort(server, "upstream")
    const agent = pico([
      "agent",
      ...["--endpoints", `secure/127.0.0.1:${service.port}`],
      ...["--server.url", `https://localhost:${upstreamPort}`, "--server.tls.ca-file", certs.caFile],
      ...["--auth.api-key", `file:${tokenFile}`],
    ])
    await agent.waitForLog("connected")
    await server.waitForLog("upstream connected")
    const response = await request(`http://127.0.0.1:${proxyPort}/hi`, {
      headers: { "x-pico-endpoint": "secure" },
    })
    expect(response.body).toBe("secure /hi")

    // A token for another endpoint is refused, and the agent exits with the server's reason.
    const otherToken = join(certs.dir, "other-token")
    writeFileSync(otherToken, token)
    const refused = pico([
      "agent",
      ...["--endpoints", `other/127.0.0.1:${service.port}`],
      ...["--server.url", `https://localhost:${upstreamPort}`, "--server.tls.ca-file", certs.caFile],
      ...["--auth.api-key", `file:${otherToken}`],
    ])
    expect(await refused.exited).toBe(1)
    expect(
      refused.logs.some((log) => log.msg === "server refused the connection: endpoint not permitted"),
    ).toBe(true)

    await server.stop()
    await agent.stop()
    for (const output of [server, agent, refused]) {
      expect(JSON.stringify(output.logs) + output.text()).not.toContain(token)
    }
  })

  it("shows no secret in --help and names the flag of an unreadable key file", async () => {
    const help = pico(["server", "--help"])
    await help.exited
    expect(help.text()).toContain("--auth.token-hmac-secret-key")
    const broken = pico(["server", "--auth.token-rsa-public-key", "file:/nonexistent/key.pem"])
    expect(await broken.exited).toBe(1)
    expect(broken.text()).toContain(
      "invalid config: --auth.token-rsa-public-key: cannot read /nonexistent/key.pem",
    )
  })

  it("refuses a token HMAC key shorter than 32 characters, or an empty key file, never quoting it", async () => {
    const emptyFile = join(makeCertificates().dir, "empty-key")
    writeFileSync(emptyFile, "\n")
    for (const [flag, value] of [
      ["--auth.token-hmac-secret-key", "shortkey"],
      ["--proxy.auth.token-hmac-secret-key", `file:${emptyFile}`],
    ] as const) {
      const refused = pico(["server", ...loopbackPorts("proxy", "upstream", "admin", "gossip"), flag, value])
      expect(await refused.exited).toBe(1)
      expect(refused.text()).toContain(
        `invalid config: ${flag}: invalid value (redacted): must be at least 32 characters (make one with: openssl rand -base64 32)`,
      )
      expect(refused.text()).not.toContain("shortkey")
    }
  })
})

describe("pico server and agent with unusable TLS files", () => {
  it("exit 1 naming the flag and the file, before any port listens, and never print the key", async () => {
    const certs = makeCertificates()
    const junk = join(certs.dir, "junk.pem")
    writeFileSync(junk, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    const key = readFileSync(certs.serverKey, "utf8")
    const derCa = join(certs.dir, "ca.der")
    writeFileSync(derCa, new X509Certificate(certs.ca).raw)
    const serverWith = (...flags: Array<string>) =>
      pico(["server", ...loopbackPorts("proxy", "upstream", "admin", "gossip"), ...flags])
    const cases: Array<[ReturnType<typeof pico>, string]> = [
      [
        serverWith("--admin.tls.cert-file", junk, "--admin.tls.key-file", certs.serverKey),
        `invalid config: --admin.tls.cert-file ${junk}: not a PEM certificate (`,
      ],
      [
        serverWith("--proxy.tls.cert-file", certs.serverCert, "--proxy.tls.key-file", certs.serverCert),
        `invalid config: --proxy.tls.key-file ${certs.serverCert}: not a PEM private key (`,
      ],
      [
        serverWith(
          "--upstream.tls.cert-file",
          certs.serverCert,
          "--upstream.tls.key-file",
          certs.otherServerKey,
        ),
        `invalid config: --upstream.tls.key-file ${certs.otherServerKey}: not the key of --upstream.tls.cert-file ${certs.serverCert} (`,
      ],
      [
        serverWith(
          ...["--admin.tls.cert-file", certs.serverCert, "--admin.tls.key-file", certs.serverKey],
          ...["--admin.tls.client-ca-file", junk],
        ),
        `invalid config: --admin.tls.client-ca-file ${junk}: no PEM certificate in it (`,
      ],
      [
        // DER parses as a certificate, but Node's ca option would trust nothing from it.
        serverWith(
          ...["--admin.tls.cert-file", certs.serverCert, "--admin.tls.key-file", certs.serverKey],
          ...["--admin.tls.client-ca-file", derCa],
        ),
        `invalid config: --admin.tls.client-ca-file ${derCa}: no PEM certificate in it (not PEM)`,
      ],
      [
        serverWith(
          ...["--proxy.tls.cert-file", certs.serverCert, "--proxy.tls.key-file", certs.serverKey],
          ...["--proxy.tls.peer-ca-file", junk],
        ),
        `invalid config: --proxy.tls.peer-ca-file ${junk}: no PEM certificate in it (`,
      ],
      [
        serverWith(
          "--proxy.tls.cert-file",
          certs.serverCert,
          "--proxy.tls.key-file",
          `${certs.dir}/nope.pem`,
        ),
        `invalid config: --proxy.tls.key-file: cannot read ${certs.dir}/nope.pem`,
      ],
      [
        pico([
          ...["agent", "--endpoints", "e/127.0.0.1:9", "--server.url", "https://127.0.0.1:9"],
          ...["--server.tls.cert-file", junk, "--server.tls.key-file", certs.clientKey],
        ]),
        `invalid config: --server.tls.cert-file ${junk}: not a PEM certificate (`,
      ],
      [
        pico([
          ...["agent", "--endpoints", "e/127.0.0.1:9", "--server.url", "http://127.0.0.1:9"],
          ...["--forwarder.tls.ca-file", junk],
        ]),
        `invalid config: --forwarder.tls.ca-file ${junk}: no PEM certificate in it (`,
      ],
      [
        pico([
          ...["forward", "tcp", "--endpoint", "db", "--local.bind-addr", "127.0.0.1:0"],
          ...["--server.url", "https://127.0.0.1:9", "--server.tls.ca-file", junk],
        ]),
        `invalid config: --server.tls.ca-file ${junk}: no PEM certificate in it (`,
      ],
    ]
    for (const [run, message] of cases) {
      expect(await run.exited).toBe(1)
      expect(run.text()).toContain(message)
      expect(run.logs.some((log) => String(log.msg).endsWith(" listening"))).toBe(false)
      expect(run.text()).not.toContain("listening on")
      expect(run.text()).not.toContain(key.split("\n")[1])
    }
  })
})

describe("credentials in URLs", () => {
  it("are redacted wherever a URL setting is printed: start-up logs, pico forward's line, errors", async () => {
    const password = "S3cretPw"
    const agent = pico([
      ...["agent", "--endpoints", "e/127.0.0.1:9", "--server.url", `http://user:${password}@127.0.0.1:9`],
      ...loopbackPorts("admin"),
    ])
    expect((await agent.waitForLog("starting pico agent")).config).toMatchObject({
      server: { url: "http://(redacted)@127.0.0.1:9" },
    })
    const server = pico([
      ...["server", ...loopbackPorts("proxy", "upstream", "admin", "gossip")],
      ...["--auth.jwks-url", `https://user:${password}@127.0.0.1:9/jwks.json`],
    ])
    expect((await server.waitForLog("starting pico server")).config).toMatchObject({
      auth: { jwks_url: "https://(redacted)@127.0.0.1:9/jwks.json" },
    })
    const forward = pico([
      ...["forward", "tcp", "--endpoint", "db", "--local.bind-addr", "127.0.0.1:0"],
      ...["--server.url", `http://user:${password}@127.0.0.1:9`],
    ])
    await waitFor("pico forward's line", () => forward.text().includes("forwarding to endpoint db"))
    expect(forward.text()).toContain("through http://(redacted)@127.0.0.1:9")
    const refused = pico(["status", "cluster", "nodes", "--server.url", `ftp://user:${password}@127.0.0.1:9`])
    expect(await refused.exited).toBe(1)
    expect(refused.text()).toContain('--server.url: invalid value "ftp://(redacted)@127.0.0.1:9"')
    await Promise.all([agent.stop(), server.stop(), forward.stop()])
    for (const run of [agent, server, forward, refused]) expect(run.text()).not.toContain(password)
  })
})

describe("pico server and agent", () => {
  it("keep running when a kept-alive connection's second request is malformed: the server's ports and the agent's", async () => {
    const service = await startHttpServer((_req, res) => res.end("ok"))
    cleanups.push(service.close)
    const server = pico(["server", ...loopbackPorts("proxy", "upstream", "admin", "gossip")])
    const [proxy, upstream, admin] = [
      await listeningPort(server, "proxy"),
      await listeningPort(server, "upstream"),
      await listeningPort(server, "admin"),
    ]
    const agent = pico([
      "agent",
      ...["--endpoints", `e/127.0.0.1:${service.port}`, "--server.url", `http://127.0.0.1:${upstream}`],
      ...loopbackPorts("admin"),
    ])
    const agentAdmin = await listeningPort(agent, "admin")
    const malformed = "GET /second HTTP/1.1\r\nHost: e\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
    for (const port of [proxy, upstream, admin, agentAdmin]) {
      const after = await afterFirstAnswer(port, malformed, false)
      expect(after.slice(0, 12)).toBe("HTTP/1.1 400")
    }
    expect((await request(`http://127.0.0.1:${admin}/health`)).status).toBe(200)
    expect((await request(`http://127.0.0.1:${agentAdmin}/health`)).status).toBe(200)
    expect([server.child.exitCode, agent.child.exitCode]).toEqual([null, null])
  })

  it("log an upstream session's protocol error at warn, with the reason, and serve on", async () => {
    const server = pico(["server", ...loopbackPorts("proxy", "upstream", "admin", "gossip")])
    const upstream = await listeningPort(server, "upstream")
    const admin = await listeningPort(server, "admin")
    const session = new WebSocket(`ws://127.0.0.1:${upstream}/pico/v1/listener/bad`)
    await new Promise((resolve, reject) => session.once("open", resolve).once("error", reject))
    // Not a yamux header: version 9.
    session.send(Buffer.from([9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]))
    const line = await server.waitForLog("upstream disconnected")
    expect([line.level, line["endpoint-id"], line.reason]).toEqual([
      "warn",
      "bad",
      expect.stringMatching(/^ProtocolError: /),
    ])
    expect((await request(`http://127.0.0.1:${admin}/health`)).status).toBe(200)
  })
})
