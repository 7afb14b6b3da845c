import { randomBytes } from "node:crypto"
import * as http from "node:http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startHttpServer, waitFor } from "../support/http.js"
import { startAgent, startNode, type TestAgent, type TestNode } from "../support/node.js"

/**
 * Many large responses at once through one tunnel: each of its streams must keep flowing. A stream the agent paused
 * for its window could miss its wake-up when the credit came while the tunnel was full, and then hung until its
 * client left (the pinned harness's 1 MiB case: 45 of 50 connections stuck for the whole run).
 */
const body = randomBytes(1024 * 1024)
let node: TestNode
let agent: TestAgent
let service: Awaited<ReturnType<typeof startHttpServer>>

beforeAll(async () => {
  service = await startHttpServer((_req, res) => {
    res.writeHead(200, { "content-length": body.length })
    res.end(body)
  })
  node = await startNode()
  agent = startAgent(node.upstreamUrl, { big: service.port })
  await waitFor("agent registered", async () => (await node.upstreamCount("big")) === 1)
})

afterAll(async () => {
  await agent.stop()
  await node.close()
  await service.close()
})

/** Downloads the body on a kept-alive connection of `client`, `times` times; resolves with the bytes of each. */
const downloads = (client: http.Agent, times: number) =>
  (async () => {
    const sizes: Array<number> = []
    for (let i = 0; i < times; i++)
      sizes.push(
        await new Promise<number>((resolve, reject) => {
          http
            .get(`${node.proxyUrl}/big`, { agent: client, headers: { "x-pico-endpoint": "big" } }, (res) => {
              let size = 0
              res.on("data", (chunk: Buffer) => (size += chunk.length))
              res.on("end", () => resolve(size))
            })
            .on("error", reject)
        }),
      )
    return sizes
  })()

describe("many large responses at once", () => {
  it("all finish: 50 connections each download 1 MiB four times through one tunnel", async () => {
    const clients = Array.from({ length: 50 }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }))
    try {
      const all = await Promise.all(clients.map((client) => downloads(client, 4)))
      expect(all.flat()).toEqual(Array(200).fill(body.length))
    } finally {
      for (const client of clients) client.destroy()
    }
  }, 30_000)
})
