import { Context, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { AdminServer } from "../../src/Admin.js"
import * as Agent from "../../src/Agent.js"
import { EndpointId } from "../../src/Domain/EndpointId.js"
import * as Gossip from "../../src/Gossip.js"
import { load, serverSettings } from "../../src/PicoConfig.js"
import * as PicoLogger from "../../src/PicoLogger.js"
import { ProxyHandler, ProxyServer } from "../../src/Proxy.js"
import { serverLayer } from "../../src/programs/server.js"
import { Registry } from "../../src/Registry.js"
import * as Tunnel from "../../src/Tunnel.js"
import { UpstreamServer } from "../../src/UpstreamListener.js"

/** Tests log only errors unless PICO_TEST_LOG asks for more. */
export const testLogger = PicoLogger.layer({
  level: (process.env.PICO_TEST_LOG as PicoLogger.LogSettings["level"] | undefined) ?? "error",
  subsystems: [],
})

export interface TestNode {
  readonly proxyPort: number
  readonly upstreamPort: number
  readonly adminPort: number
  readonly proxyUrl: string
  readonly upstreamUrl: string
  readonly adminUrl: string
  /** Where other nodes reach this one's gossip (host:port). */
  readonly gossipAddr: string
  readonly nodeId: string
  /** Whether this node can route the endpoint to another node. */
  readonly routesRemotely: (endpointId: string) => boolean
  /** Whether this node sees the other node as an active member with known addresses. */
  readonly knows: (nodeId: string) => Promise<boolean>
  /** How many upstreams are registered locally for the endpoint. */
  readonly upstreamCount: (endpointId: string) => Promise<number>
  /** Graceful shutdown, as on SIGTERM: resolves once the node has drained and closed. */
  readonly close: () => Promise<void>
  /** The proxy's own handler, for connections a test hands it directly (no address, as a replay's). */
  readonly proxyHandler: ProxyHandler["Type"]
}

/** Starts a whole server node in this process on ephemeral 127.0.0.1 ports (or the ones given in `flags`). */
export const startNode = async (flags: Record<string, unknown> = {}): Promise<TestNode> => {
  const config = await Effect.runPromise(
    load(serverSettings, {
      flags: {
        "proxy.bind-addr": "127.0.0.1:0",
        "upstream.bind-addr": "127.0.0.1:0",
        "admin.bind-addr": "127.0.0.1:0",
        "gossip.bind-addr": "127.0.0.1:0",
        // Tests that read the access log turn it on, into a file of their own.
        "access-log.enabled": false,
        ...flags,
      },
    }),
  )
  const scope = await Effect.runPromise(Scope.make())
  const context = await Effect.runPromise(
    Layer.buildWithScope(serverLayer(config).pipe(Layer.provide(testLogger)), scope).pipe(
      // A node that fails to start releases what it had bound.
      Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause))),
    ),
  )
  const proxyPort = Context.get(context, ProxyServer).address.port
  const upstreamPort = Context.get(context, UpstreamServer).address.port
  const adminPort = Context.get(context, AdminServer).address.port
  const registry = Context.get(context, Registry)
  const gossip = Context.get(context, Gossip.Gossip)
  const self = (await Effect.runPromise(gossip.nodes)).find((node) => node.id === gossip.nodeId)
  let closed: Promise<void> | undefined
  return {
    proxyPort,
    upstreamPort,
    adminPort,
    proxyUrl: `http://127.0.0.1:${proxyPort}`,
    upstreamUrl: `http://127.0.0.1:${upstreamPort}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    gossipAddr: self?.addr ?? "",
    nodeId: gossip.nodeId,
    routesRemotely: (endpointId) => registry.pickRemote(EndpointId(endpointId), new Set()) !== undefined,
    knows: async (nodeId) =>
      (await Effect.runPromise(registry.clusterNodes)).some(
        (node) => node.id === nodeId && node.status === "active",
      ),
    upstreamCount: async (endpointId) =>
      (await Effect.runPromise(registry.localEndpoints)).get(EndpointId(endpointId))?.length ?? 0,
    close: () => {
      closed ??= Effect.runPromise(Scope.close(scope, Exit.void))
      return closed
    },
    proxyHandler: Context.get(context, ProxyHandler),
  }
}

/** Two nodes started with the same flags, the second joining the first. */
export const startJoinedPair = async (
  flags: Record<string, unknown>,
): Promise<readonly [TestNode, TestNode]> => {
  const first = await startNode(flags)
  const second = await startNode({ ...flags, "cluster.join": [first.gossipAddr] }).catch(async (error) => {
    await first.close()
    throw error
  })
  return [first, second]
}

export interface TestAgent {
  readonly stop: () => Promise<void>
  /** Resolves with the agent's fatal error, if it ever fails. */
  readonly failure: Promise<Agent.AgentError>
}

/** Runs an in-process agent; `endpoints` map endpoint ids to local ports. */
export const startAgent = (
  serverUrl: string,
  endpoints: Record<string, number>,
  options: Partial<Agent.AgentOptions> & { heartbeat?: Tunnel.HeartbeatSettings } = {},
): TestAgent => {
  const heartbeat = options.heartbeat ?? { interval: 10_000, timeout: 10_000 }
  let reportFailure: (error: Agent.AgentError) => void = () => {}
  const failure = new Promise<Agent.AgentError>((resolve) => {
    reportFailure = resolve
  })
  const fiber = Effect.runFork(
    Agent.run({
      serverUrl,
      endpoints: Object.entries(endpoints).map(([id, port]) => ({
        id: EndpointId(id),
        host: "127.0.0.1",
        port,
      })),
      forwardTimeout: 10_000,
      healthyAfter: 1000,
      ...options,
    }).pipe(
      Effect.tapError((error) => Effect.sync(() => reportFailure(error))),
      Effect.provide(Tunnel.layer(heartbeat)),
      Effect.provide(testLogger),
    ),
  )
  return {
    stop: () => Effect.runPromise(Fiber.interrupt(fiber)).then(() => undefined),
    failure,
  }
}
