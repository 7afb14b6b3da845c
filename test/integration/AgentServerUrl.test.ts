import { afterEach, describe, expect, it } from "vitest"
import { startAgent, startNode } from "../support/node.js"

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

describe("an agent whose server URL is a node's proxy port", () => {
  it("stops when a DNS name makes the proxy look for an endpoint it does not have (503)", async () => {
    // The proxy takes the first label of a dotted Host as the endpoint id; a real server URL such as
    // http://pico.example.com:8000 does that. The name is given as the Host header here, as no DNS is at hand.
    const node = await startNode({ "proxy.gateway-timeout": "100ms" })
    cleanups.push(node.close)
    const agent = startAgent(node.proxyUrl, { e: 1 }, { headers: { host: "pico.example.com" } })
    cleanups.push(agent.stop)
    const error = await agent.failure
    expect({ reason: error.reason, message: error.message }).toEqual({
      reason: "not an upstream port",
      message:
        `--server.url ${node.proxyUrl} is a Pico proxy port (it answered HTTP 503 Service Unavailable: endpoint ` +
        "not found); it must be a Pico node's upstream port (8001 by default)",
    })
  })
})
