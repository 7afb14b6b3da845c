import { Effect } from "effect"
import * as Agent from "../Agent.js"
import type { AgentConfigShape } from "../PicoConfig.js"
import * as Tunnel from "../Tunnel.js"

/** `pico agent`: one tunnel per configured endpoint, until interrupted or refused by the server. */
export const agentProgram = (config: AgentConfigShape) =>
  Agent.run({
    endpoints: config.endpoints,
    serverUrl: config.server.url,
    forwardTimeout: config.forwarder.timeout,
    healthyAfter: config.server.heartbeatInterval,
  }).pipe(
    Effect.provide(
      Tunnel.layer({ interval: config.server.heartbeatInterval, timeout: config.server.heartbeatTimeout }),
    ),
  )
