import { Context, Effect, Exit, Layer, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as AgentAdmin from "../src/AgentAdmin.js"
import { forwardMetrics } from "../src/Metrics/Agent.js"
import { agentFamilies, processFamilies } from "../src/Metrics.js"
import { request } from "./support/http.js"
import { testLogger } from "./support/node.js"
import { checkWithPromtool, readMetrics, valueOf } from "./support/prometheus.js"

let scope: Scope.CloseableScope
let adminUrl: string

beforeAll(async () => {
  scope = await Effect.runPromise(Scope.make())
  const context = await Effect.runPromise(
    Layer.buildWithScope(
      AgentAdmin.layerServer({ host: "127.0.0.1", port: 0 }).pipe(Layer.provide(testLogger)),
      scope,
    ),
  )
  adminUrl = `http://127.0.0.1:${Context.get(context, AgentAdmin.AgentAdminServer).address.port}`
})

afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))

describe("the agent's admin port", () => {
  it("answers /health, and 404 elsewhere", async () => {
    expect((await request(`${adminUrl}/health`)).status).toBe(200)
    expect((await request(`${adminUrl}/status/cluster/nodes`)).status).toBe(404)
  })

  it("exposes per-endpoint forwarding counters and latency, and the process metrics", async () => {
    const orders = forwardMetrics("agent-admin-orders")
    const started = orders.forwarded()
    orders.responded(started)
    orders.forwarded()
    orders.failed("upstream unreachable")
    forwardMetrics("agent-admin-users").forwarded()

    const text = (await request(`${adminUrl}/metrics`)).body
    expect(checkWithPromtool(text)).toBe("")
    const families = readMetrics(text)
    for (const declared of [...agentFamilies, ...processFamilies])
      expect(families.get(declared.name)?.type, declared.name).toBe(declared.type)
    expect(
      [...families.keys()].filter((name) => name.startsWith("pico_") && !name.startsWith("pico_agent_")),
    ).toEqual([])
    const orderLabels = { endpoint_id: "agent-admin-orders" }
    expect(valueOf(families, "pico_agent_forwards_total", orderLabels)).toBe(2)
    expect(valueOf(families, "pico_agent_forwards_total", { endpoint_id: "agent-admin-users" })).toBe(1)
    expect(
      valueOf(families, "pico_agent_forward_errors_total", {
        ...orderLabels,
        reason: "upstream unreachable",
      }),
    ).toBe(1)
    expect(valueOf(families, "pico_agent_response_latency_seconds_count", orderLabels)).toBe(1)
  })
})
