import { createHash, randomBytes } from "node:crypto"
import { once } from "node:events"
import { readFileSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import WebSocket from "ws"
import { request } from "../support/http.js"
import { demoConfigPath } from "../support/nginx.js"
import { type ChaosCluster, ENDPOINT, startChaosCluster } from "./cluster.js"

/** The directives of the demo's `server { listen <port>; ... }` block, as name → value. */
const serverDirectives = (port: number): Map<string, string> => {
  const config = readFileSync(demoConfigPath, "utf8")
  const block = new RegExp(`server \\{\\s*listen ${port};([^}]*)\\}`).exec(config)?.[1] ?? ""
  return new Map([...block.matchAll(/^\s*(\w+) ([^;]*);/gm)].map((match) => [match[1] ?? "", match[2] ?? ""]))
}

// Stands in for nginx's 60 s default read/send timeouts, so that an idle test of a few seconds shows whether the
// demo's own settings keep a WebSocket open.
const SHORT_DEFAULT = "2s"

/**
 * The demo's balancer (docs/demo/nginx.conf) in front of a node, for what passes through it. One node: a WebSocket
 * must land on the node holding the endpoint, as upgrades do not yet cross to another node (issue 8).
 */
describe("the demo's NGINX balancer", () => {
  let cluster: ChaosCluster
  beforeAll(async () => {
    cluster = await startChaosCluster({
      nodes: 1,
      balancerPrelude: [`proxy_read_timeout ${SHORT_DEFAULT};`, `proxy_send_timeout ${SHORT_DEFAULT};`],
    })
  }, 60_000)
  afterAll(() => cluster?.teardown())

  it("sets no body limit and long timeouts on the proxy port", () => {
    expect(readFileSync(demoConfigPath, "utf8")).toMatch(/^\s*client_max_body_size 0;/m)
    const proxyPort = serverDirectives(8000)
    expect(proxyPort.get("proxy_read_timeout")).toBe("1h")
    expect(proxyPort.get("proxy_send_timeout")).toBe("1h")
  })

  it("passes a request body over 1 MiB", async () => {
    const body = randomBytes(2 * 1024 * 1024 + 1)
    const response = await request(cluster.balancerUrl, {
      method: "POST",
      headers: { "x-pico-endpoint": ENDPOINT },
      body,
      timeoutMs: 30_000,
    })
    expect(response.status).toBe(200)
    expect(response.body).toBe(createHash("sha256").update(body).digest("hex"))
  })

  it("keeps an idle WebSocket open past its inherited timeouts", async () => {
    const ws = new WebSocket(cluster.balancerUrl.replace("http:", "ws:"), {
      headers: { "x-pico-endpoint": ENDPOINT },
    })
    await once(ws, "open")
    const echo = async (text: string) => {
      ws.send(text)
      const [data] = await once(ws, "message")
      return String(data)
    }
    expect(await echo("hello")).toBe("hello")
    let closed = false
    ws.on("close", () => {
      closed = true
    })
    // Idle for twice the inherited timeouts: this wait is the scenario itself.
    await new Promise((resolve) => setTimeout(resolve, 4000))
    expect(closed).toBe(false)
    expect(await echo("still open")).toBe("still open")
    ws.close()
  })
})
