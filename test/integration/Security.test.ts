import { X509Certificate } from "node:crypto"
import { readFileSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import * as tls from "node:tls"
import * as jose from "jose"
import { afterEach, describe, expect, it } from "vitest"
import WebSocket from "ws"
import { openConnection, request, startHttpServer, waitFor } from "../support/http.js"
import { startAgent, startNode } from "../support/node.js"
import { readMetrics, valueOf } from "../support/prometheus.js"
import { makeCertificates } from "../support/tls.js"
import { hmacSecret, hmacToken, newClusterKey } from "../support/tokens.js"

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const echoHeaders = async () => {
  const service = await startHttpServer((req, res) => res.end(JSON.stringify(req.headers)))
  cleanups.push(service.close)
  return service
}

/** Status and JSON error of a WebSocket upgrade the server refuses. */
const refusal = (url: string, headers: Record<string, string>) =>
  new Promise<{ status: number; error: unknown }>((resolve, reject) => {
    const ws = new WebSocket(url, { headers })
    ws.on("open", () => reject(new Error("upgrade was accepted")))
    ws.on("error", () => {})
    ws.on("unexpected-response", (_req, res) => {
      let body = ""
      res.on("data", (chunk: Buffer) => {
        body += chunk.toString()
      })
      res.on("end", () => resolve({ status: res.statusCode ?? 0, error: JSON.parse(body).error }))
    })
  })

describe("upstream authentication", () => {
  it("refuses bad tokens before upgrading, with a JSON reason", async () => {
    const node = await startNode({ "auth.token-hmac-secret-key": hmacSecret })
    cleanups.push(node.close)
    const url = `ws://127.0.0.1:${node.upstreamPort}/pico/v1/listener/my-endpoint`
    const cases: Array<[Record<string, string>, string]> = [
      [{}, "missing authorization"],
      [{ authorization: "Basic dXNlcjpwYXNz" }, "unsupported auth type"],
      [{ authorization: "Bearer not.a.token" }, "invalid token"],
      [{ authorization: `Bearer ${await hmacToken({}, -60)}` }, "expired token"],
      [
        { authorization: `Bearer ${await hmacToken({ pico: { endpoints: ["other"] } })}` },
        "endpoint not permitted",
      ],
    ]
    for (const [headers, error] of cases) expect(await refusal(url, headers)).toEqual({ status: 401, error })
  })

  it("accepts a valid token, and ends the session when the token expires", async () => {
    const service = await echoHeaders()
    const node = await startNode({ "auth.token-hmac-secret-key": hmacSecret, "auth.token-leeway": "0s" })
    cleanups.push(node.close)
    const token = await hmacToken({ pico: { endpoints: ["e"] } }, 2)
    const agent = startAgent(
      node.upstreamUrl,
      { e: service.port },
      { headers: { authorization: `Bearer ${token}` } },
    )
    cleanups.push(agent.stop)
    await waitFor("agent registered", async () => (await node.upstreamCount("e")) === 1)
    expect((await request(`${node.proxyUrl}/`, { headers: { "x-pico-endpoint": "e" } })).status).toBe(200)

    await waitFor("session ended at expiry", async () => (await node.upstreamCount("e")) === 0, 10_000)
    // The agent reconnects with its now expired token and gives up with the server's reason.
    expect((await agent.failure).message).toBe("server refused the connection: expired token")
  })

  it("accepts and disconnects by one instant, exp plus leeway, so an expiring agent does not flap", async () => {
    const service = await echoHeaders()
    const node = await startNode({ "auth.token-hmac-secret-key": hmacSecret, "auth.token-leeway": "3s" })
    cleanups.push(node.close)
    // Already past exp, still within the leeway: accepted, and held until exp + 3 s, not cut at once.
    const token = await hmacToken({}, -1)
    const { exp = 0 } = jose.decodeJwt(token)
    const agent = startAgent(
      node.upstreamUrl,
      { e: service.port },
      { headers: { authorization: `Bearer ${token}` } },
    )
    cleanups.push(agent.stop)
    await waitFor("agent registered", async () => (await node.upstreamCount("e")) === 1)
    expect((await request(`${node.proxyUrl}/`, { headers: { "x-pico-endpoint": "e" } })).status).toBe(200)
    expect((await agent.failure).message).toBe("server refused the connection: expired token")
    // One session, ended at exp + leeway (1 to 2 s after connecting), then refused at the handshake.
    expect(Date.now()).toBeGreaterThanOrEqual((exp + 3) * 1000 - 10) // timers may round a millisecond early
    const metrics = (await request(`${node.adminUrl}/metrics`)).body
    expect(metrics).toMatch(/^pico_upstream_connections_total 1$/m)
  })
})

describe("proxy client authentication", () => {
  it("requires a token and keeps the client's own Authorization for the upstream", async () => {
    const service = await echoHeaders()
    const node = await startNode({ "proxy.auth.token-hmac-secret-key": hmacSecret })
    cleanups.push(node.close)
    const agent = startAgent(node.upstreamUrl, { e: service.port })
    cleanups.push(agent.stop)
    await waitFor("agent registered", async () => (await node.upstreamCount("e")) === 1)
    const url = `${node.proxyUrl}/`

    const missing = await request(url, { headers: { "x-pico-endpoint": "e" } })
    expect([missing.status, JSON.parse(missing.body)]).toEqual([401, { error: "missing authorization" }])

    const token = await hmacToken({ pico: { endpoints: ["e"] } })
    const viaPicoHeader = await request(url, {
      headers: {
        "x-pico-endpoint": "e",
        "x-pico-authorization": token,
        authorization: "Basic upstream-credential",
      },
    })
    expect(viaPicoHeader.status).toBe(200)
    const seenWithPicoHeader = JSON.parse(viaPicoHeader.body)
    expect(seenWithPicoHeader.authorization).toBe("Basic upstream-credential")
    expect(seenWithPicoHeader["x-pico-authorization"]).toBeUndefined()

    const viaAuthorization = await request(url, {
      headers: { "x-pico-endpoint": "e", authorization: `Bearer ${token}` },
    })
    expect(viaAuthorization.status).toBe(200)
    expect(JSON.parse(viaAuthorization.body).authorization).toBeUndefined()

    const otherEndpoint = await hmacToken({ pico: { endpoints: ["other"] } })
    const refused = await request(url, {
      headers: { "x-pico-endpoint": "e", "x-pico-authorization": `Bearer ${otherEndpoint}` },
    })
    expect([refused.status, JSON.parse(refused.body)]).toEqual([401, { error: "endpoint not permitted" }])
  })
})

describe("proxy client authentication from a JWKS URL", () => {
  it("sends nothing for a client that left while its token waited for the keys", async () => {
    const { publicKey, privateKey } = await jose.generateKeyPair("ES256")
    const jwk = { ...(await jose.exportJWK(publicKey)), kid: "k", alg: "ES256" }
    // The key set is held until the client has gone.
    let answerKeys: (() => void) | undefined
    const jwks = await startHttpServer((_req, res) => {
      answerKeys = () =>
        res.setHeader("content-type", "application/json").end(JSON.stringify({ keys: [jwk] }))
    })
    cleanups.push(jwks.close)
    const seen: Array<string> = []
    const service = await startHttpServer((req, res) => {
      seen.push(`${req.method} ${req.url}`)
      res.end("ok")
    })
    cleanups.push(service.close)
    const node = await startNode({ "proxy.auth.jwks-url": `http://127.0.0.1:${jwks.port}/jwks.json` })
    cleanups.push(node.close)
    const agent = startAgent(node.upstreamUrl, { e: service.port })
    cleanups.push(agent.stop)
    await waitFor("agent registered", async () => (await node.upstreamCount("e")) === 1)
    const token = await new jose.SignJWT({})
      .setProtectedHeader({ alg: "ES256", kid: "k" })
      .setExpirationTime("1h")
      .sign(privateKey)
    const client = openConnection(
      node.proxyPort,
      `DELETE /while-authorizing HTTP/1.1\r\nHost: x\r\nx-pico-endpoint: e\r\nAuthorization: Bearer ${token}\r\n\r\n`,
    )
    await waitFor("the node to ask for the keys", () => answerKeys !== undefined)
    const gone = async () =>
      valueOf(readMetrics((await request(`${node.adminUrl}/metrics`)).body), "pico_proxy_requests_total", {
        status: "499",
      })
    client.destroy()
    await waitFor("the node to see the client gone", async () => (await gone()) === 1)
    answerKeys?.()
    // Sent after the keys came: the DELETE, had it gone on, would be at the service first.
    const after = await request(`${node.proxyUrl}/after`, {
      headers: { "x-pico-endpoint": "e", authorization: `Bearer ${token}` },
    })
    expect(after.status).toBe(200)
    expect(seen).toEqual(["GET /after"])
  })
})

describe("admin authentication", () => {
  it("protects the admin API but leaves the probes open", async () => {
    const node = await startNode({ "admin.auth.token-hmac-secret-key": hmacSecret })
    cleanups.push(node.close)
    expect((await request(`${node.adminUrl}/health`)).status).toBe(200)
    expect((await request(`${node.adminUrl}/ready`)).status).toBe(200)
    const anonymous = await request(`${node.adminUrl}/status/cluster/nodes`)
    expect([anonymous.status, JSON.parse(anonymous.body)]).toEqual([401, { error: "missing authorization" }])
    const authorized = await request(`${node.adminUrl}/no-such-route`, {
      headers: { authorization: `Bearer ${await hmacToken()}` },
    })
    expect(authorized.status).toBe(404)
  })
})

describe("TLS", () => {
  it("serves the proxy and admin ports over TLS and tells upstreams the client used https", async () => {
    const certs = makeCertificates()
    const service = await echoHeaders()
    const node = await startNode({
      "proxy.tls.cert-file": certs.serverCert,
      "proxy.tls.key-file": certs.serverKey,
      "admin.tls.cert-file": certs.serverCert,
      "admin.tls.key-file": certs.serverKey,
    })
    cleanups.push(node.close)
    const agent = startAgent(node.upstreamUrl, { e: service.port })
    cleanups.push(agent.stop)
    await waitFor("agent registered", async () => (await node.upstreamCount("e")) === 1)

    const response = await request(`https://localhost:${node.proxyPort}/`, {
      headers: { "x-pico-endpoint": "e" },
      tls: { ca: certs.ca },
    })
    expect(JSON.parse(response.body)["x-forwarded-proto"]).toBe("https")
    expect(
      (await request(`https://localhost:${node.adminPort}/ready`, { tls: { ca: certs.ca } })).status,
    ).toBe(200)
    await expect(request(`http://127.0.0.1:${node.proxyPort}/`)).rejects.toThrow()
  })

  it("closes a connection that never starts its TLS handshake within --proxy.read-header-timeout", async () => {
    const certs = makeCertificates()
    const node = await startNode({
      "proxy.tls.cert-file": certs.serverCert,
      "proxy.tls.key-file": certs.serverKey,
      "proxy.read-header-timeout": "500ms",
    })
    cleanups.push(node.close)
    const started = Date.now()
    // Not HTTP yet, so Node's header timeout does not reach it; left alone, it would hold a drain for 120 s.
    const closedAfter = await new Promise<number>((resolve, reject) => {
      const socket = net.connect(node.proxyPort, "127.0.0.1")
      socket.on("error", () => {})
      socket.once("close", () => resolve(Date.now() - started))
      setTimeout(() => reject(new Error("still open after 5 s")), 5000).unref()
    })
    expect(closedAfter).toBeGreaterThanOrEqual(450)
    expect(closedAfter).toBeLessThan(5000)
  })

  it("picks up a rotated certificate without a restart", async () => {
    const certs = makeCertificates()
    const certFile = `${certs.dir}/live.crt`
    const keyFile = `${certs.dir}/live.key`
    writeFileSync(certFile, readFileSync(certs.serverCert))
    writeFileSync(keyFile, readFileSync(certs.serverKey))
    const node = await startNode({ "admin.tls.cert-file": certFile, "admin.tls.key-file": keyFile })
    cleanups.push(node.close)

    const servedSerial = () =>
      new Promise<string>((resolve, reject) => {
        const socket = tls.connect(
          { port: node.adminPort, host: "127.0.0.1", servername: "localhost", ca: certs.ca },
          () => {
            resolve(socket.getPeerCertificate().serialNumber)
            socket.end()
          },
        )
        socket.on("error", reject)
      })
    const serialOf = (file: string) => new X509Certificate(readFileSync(file)).serialNumber
    expect(await servedSerial()).toBe(serialOf(certs.serverCert))

    writeFileSync(keyFile, readFileSync(certs.otherServerKey))
    writeFileSync(certFile, readFileSync(certs.otherServerCert))
    await waitFor(
      "rotated certificate served",
      async () => (await servedSerial()) === serialOf(certs.otherServerCert),
      10_000,
    )
  })
})

describe("TLS between nodes", () => {
  it("forwards over TLS to a peer that requires client certificates, verifying it and proving the hop", async () => {
    const certs = makeCertificates()
    const service = await startHttpServer((req, res) =>
      res.end(`${req.headers["x-forwarded-proto"]} ${req.headers["x-forwarded-for"]}`),
    )
    cleanups.push(service.close)
    const secured = {
      "gossip.interval": "50ms",
      "gossip.secret-key": [newClusterKey()],
      "proxy.tls.cert-file": certs.nodeCert,
      "proxy.tls.key-file": certs.nodeKey,
      "proxy.tls.client-ca-file": certs.caFile,
      "proxy.tls.peer-ca-file": certs.caFile,
    }
    const holder = await startNode(secured)
    cleanups.push(holder.close)
    const entry = await startNode({ ...secured, "cluster.join": [holder.gossipAddr] })
    cleanups.push(entry.close)
    const agent = startAgent(holder.upstreamUrl, { e: service.port })
    cleanups.push(agent.stop)
    await waitFor("endpoint known to the entry node", () => entry.routesRemotely("e"))

    const clientTls = {
      ca: certs.ca,
      cert: readFileSync(certs.clientCert),
      key: readFileSync(certs.clientKey),
    }
    const response = await request(`https://localhost:${entry.proxyPort}/`, {
      headers: { "x-pico-endpoint": "e" },
      tls: clientTls,
    })
    expect([response.status, response.body]).toEqual([200, "https 127.0.0.1"])
  })
})

describe("upstream TLS", () => {
  it("requires a client certificate signed by the configured CA (mTLS)", async () => {
    const certs = makeCertificates()
    const service = await echoHeaders()
    const node = await startNode({
      "upstream.tls.cert-file": certs.serverCert,
      "upstream.tls.key-file": certs.serverKey,
      "upstream.tls.client-ca-file": certs.caFile,
    })
    cleanups.push(node.close)
    const url = `https://localhost:${node.upstreamPort}`

    // Without a client certificate the TLS handshake fails: the agent never gets as far as HTTP.
    const anonymous = new WebSocket(`wss://localhost:${node.upstreamPort}/pico/v1/listener/e`, {
      ca: certs.ca,
    })
    await new Promise<void>((resolve) => anonymous.once("error", () => resolve()))
    expect(await node.upstreamCount("e")).toBe(0)

    const agent = startAgent(
      url,
      { e: service.port },
      {
        tls: { ca: certs.ca, cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) },
      },
    )
    cleanups.push(agent.stop)
    await waitFor("agent registered over mTLS", async () => (await node.upstreamCount("e")) === 1)
    expect((await request(`${node.proxyUrl}/`, { headers: { "x-pico-endpoint": "e" } })).status).toBe(200)
  })
})
