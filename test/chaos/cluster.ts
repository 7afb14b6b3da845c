import { fileURLToPath } from "node:url"
import type { GossipNodeSummary, NodeDetail, NodeSummary } from "../../src/Domain/Status.js"
import { request, waitFor } from "../support/http.js"
import { createNetwork, type Host, type Network } from "../support/netns.js"
import { balancerErrors, startDemoBalancer } from "../support/nginx.js"
import { type PicoProcess, spawnPico, spawnProcess } from "../support/process.js"
import { startDelayRelay } from "../support/relay.js"
import { newClusterKey } from "../support/tokens.js"

/**
 * The seeds' topology on separate hosts: `nodes` pico servers (n1, n2, ...), each on its own host and joining the
 * others' gossip by IP; the demo's NGINX balancer on host `lb` in front of their proxy, upstream and admin ports;
 * and host `agent` running the service and the pico agent, which reaches the cluster through the balancer, as
 * clients do. Processes are real CLI processes; the test drives them with signals.
 */

const servicePath = fileURLToPath(new URL("./service.mjs", import.meta.url))
const SERVICE_PORT = 9000

/** The endpoint the cluster's agent registers. */
export const ENDPOINT = "chaos"

export interface NodeSlot {
  readonly host: Host
  /** The process currently running on the host; a restart replaces it. */
  process: PicoProcess
  nodeId: string
}

export interface ChaosCluster {
  readonly network: Network
  readonly nodes: ReadonlyArray<NodeSlot>
  /** The balancer's proxy port, where clients send requests. */
  readonly balancerUrl: string
  /** The agent of ENDPOINT. */
  readonly agent: PicoProcess
  readonly proxyUrl: (slot: NodeSlot) => string
  /** Starts a pico agent on the agent host for `endpointId`, connecting through the balancer. */
  readonly startAgent: (endpointId: string) => Promise<PicoProcess>
  /** The running node whose agent session holds the endpoint. */
  readonly holder: (endpointId?: string) => Promise<NodeSlot>
  /**
   * Takes `slots` out of the balancer (NGINX's `down`, and a reload) and puts every other node back, as an
   * operator does before stopping a node behind NGINX, which has no health checks to learn it on its own.
   */
  readonly setBalancerDown: (slots: ReadonlyArray<NodeSlot>) => Promise<void>
  /** SIGTERM, then waits for the process to exit (after its drain and leave). */
  readonly stopNode: (slot: NodeSlot) => Promise<void>
  /** Starts a new process on the slot's host, with a fresh node id, and waits until the cluster converged. */
  readonly startNode: (slot: NodeSlot) => Promise<void>
  /** The nodes whose process runs. */
  readonly running: () => ReadonlyArray<NodeSlot>
  /**
   * The warnings and errors the nodes, agents and balancer logged since then (wall-clock ms), each distinct one
   * once with its count.
   */
  readonly warnings: (since: number) => ReadonlyArray<string>
  readonly teardown: () => Promise<void>
}

/** A GET of an admin route on the node, parsed. */
export const adminGet = async <A>(slot: NodeSlot, path: string): Promise<A> => {
  const response = await request(`http://${slot.host.ip}:8002${path}`, { timeoutMs: 5000 })
  if (response.status !== 200)
    throw new Error(`${path} on ${slot.nodeId}: ${response.status} ${response.body}`)
  return JSON.parse(response.body) as A
}

/** Whether `node` sees every running node active, and an active running node holding the endpoint. */
const routesThroughCluster = async (node: NodeSlot, running: ReadonlyArray<NodeSlot>, endpointId: string) => {
  const view = await adminGet<Array<NodeSummary>>(node, "/status/cluster/nodes")
  const active = new Set(view.filter((known) => known.status === "active").map((known) => known.id))
  if (!running.every((slot) => active.has(slot.nodeId))) return false
  for (const slot of running) {
    if (slot === node) continue
    const detail = await adminGet<NodeDetail>(node, `/status/cluster/nodes/${slot.nodeId}`)
    if ((detail.endpoints[endpointId] ?? 0) > 0) return true
  }
  const local = await adminGet<NodeDetail>(node, "/status/cluster/nodes/local")
  return (local.endpoints[endpointId] ?? 0) > 0
}

/**
 * Waits until every running node is ready, sees every running node active and knows an active holder of the
 * endpoint: what "joined and ready" means before the next step of a scenario.
 */
export const waitConverged = (cluster: ChaosCluster, endpointId = ENDPOINT, timeoutMs = 30_000) =>
  waitFor(
    "the cluster to converge",
    async () => {
      const running = cluster.running()
      for (const node of running) {
        const ready = await request(`http://${node.host.ip}:8002/ready`, { timeoutMs: 5000 }).catch(
          () => undefined,
        )
        if (ready?.status !== 200) return false
        if (!(await routesThroughCluster(node, running, endpointId).catch(() => false))) return false
      }
      return true
    },
    timeoutMs,
  )

/** What each running node lists that is not exactly the running nodes, all active: ghosts, or nodes missing. */
export const membershipErrors = async (cluster: ChaosCluster): Promise<Array<string>> => {
  const running = cluster.running()
  const expected = running.map((slot) => `${slot.nodeId} active`).sort()
  const errors: Array<string> = []
  for (const node of running) {
    for (const path of ["/status/cluster/nodes", "/status/gossip/nodes"]) {
      const listed = await adminGet<Array<NodeSummary | GossipNodeSummary>>(node, path)
      const seen = listed.map((known) => `${known.id} ${known.status}`).sort()
      if (seen.join() !== expected.join()) errors.push(`${node.nodeId} ${path}: ${seen.join(", ")}`)
    }
  }
  return errors
}

/** The cluster's gossip key, as every deploy file sets one: the nodes then also prove the requests they forward. */
const clusterKey = newClusterKey()

/** `gossip` maps each node's host to the address its peers reach its gossip port at (its own, or a relay's). */
const nodeArgs = (host: Host, gossip: ReadonlyMap<Host, string>) => [
  "server",
  ...["--gossip.secret-key", clusterKey],
  ...["--proxy.bind-addr", `${host.ip}:8000`, "--upstream.bind-addr", `${host.ip}:8001`],
  ...["--admin.bind-addr", `${host.ip}:8002`, "--gossip.bind-addr", `${host.ip}:8003`],
  ...["--gossip.advertise-addr", gossip.get(host) as string],
  ...["--cluster.node-id-prefix", `${host.name}-`],
  // Every node lists every node's address; a node skips its own.
  ...[...gossip.values()].flatMap((address) => ["--cluster.join", address]),
  // Bounds a scenario's wait for a drain; the default minute would only slow the suite.
  ...["--server.graceful-shutdown-timeout", "10s"],
]

export interface ClusterOptions {
  readonly nodes?: number
  /** Lines for the start of the balancer's `http` block (see renderDemoConfig). */
  readonly balancerPrelude?: ReadonlyArray<string>
  /**
   * Milliseconds to delay each gossip packet and TCP chunk on its way to a node (drawn per packet, so packets
   * reorder): every node's gossip then arrives through a relay (test/support/relay.ts) in this process.
   */
  readonly gossipDelay?: () => number
}

/** Builds the network and starts everything: the nodes (3), the balancer, the service and an agent. */
export const startChaosCluster = async (options: ClusterOptions = {}): Promise<ChaosCluster> => {
  const nodeCount = options.nodes ?? 3
  const nodeNames = Array.from({ length: nodeCount }, (_, i) => `n${i + 1}`)
  const network = await createNetwork([...nodeNames, "lb", "agent"])
  const nodeHosts = nodeNames.map((name) => network.host(name))
  const lb = network.host("lb")
  const agentHost = network.host("agent")
  const processes: Array<PicoProcess> = []
  const names = new Map<PicoProcess, string>()
  const track = (started: PicoProcess, name?: string) => {
    processes.push(started)
    if (name !== undefined) names.set(started, name)
    return started
  }

  const relays: Array<{ readonly close: () => void }> = []
  const gossip = new Map<Host, string>()
  const launch = async (host: Host) => {
    const started = track(spawnPico(nodeArgs(host, gossip), { netns: host.netns }))
    const listening = await started.waitForLog("gossip started", 20_000)
    const nodeId = String(listening["node-id"])
    names.set(started, nodeId)
    return { process: started, nodeId }
  }

  const teardown = async () => {
    for (const started of processes) if (started.child.exitCode === null) started.child.kill("SIGKILL")
    await Promise.all(processes.map((started) => started.exited))
    for (const relay of relays) relay.close()
    await network.destroy()
  }

  try {
    for (const host of nodeHosts) {
      if (options.gossipDelay === undefined) gossip.set(host, `${host.ip}:8003`)
      else {
        const relay = await startDelayRelay(
          network.testIp,
          { host: host.ip, port: 8003 },
          options.gossipDelay,
        )
        relays.push(relay)
        gossip.set(host, `${network.testIp}:${relay.port}`)
      }
    }
    const nodes: Array<NodeSlot> = []
    for (const host of nodeHosts) nodes.push({ host, ...(await launch(host)) })
    const balancer = await startDemoBalancer(lb, nodeHosts, `${network.dir}/nginx`, options.balancerPrelude)
    track(balancer.process)
    const service = track(
      spawnProcess(process.execPath, [servicePath, String(SERVICE_PORT)], { netns: agentHost.netns }),
    )
    await service.waitForLog("service listening")

    const startAgent = async (endpointId: string) => {
      const agent = track(
        spawnPico(
          [
            "agent",
            "--endpoints",
            `${endpointId}/127.0.0.1:${SERVICE_PORT}`,
            "--server.url",
            `http://${lb.ip}:8001`,
          ],
          { netns: agentHost.netns },
        ),
        `agent of ${endpointId}`,
      )
      await agent.waitForLog("connected", 20_000)
      return agent
    }
    const isRunning = (slot: NodeSlot) =>
      slot.process.child.exitCode === null && slot.process.child.signalCode === null
    const cluster: ChaosCluster = {
      network,
      nodes,
      balancerUrl: `http://${lb.ip}:8000`,
      agent: await startAgent(ENDPOINT),
      proxyUrl: (slot) => `http://${slot.host.ip}:8000`,
      startAgent,
      holder: async (endpointId = ENDPOINT) => {
        for (const slot of nodes.filter(isRunning)) {
          const local = await adminGet<NodeDetail>(slot, "/status/cluster/nodes/local")
          if ((local.endpoints[endpointId] ?? 0) > 0) return slot
        }
        throw new Error(`no running node holds ${endpointId}`)
      },
      setBalancerDown: (slots) => balancer.setDown(slots.map((slot) => slot.host)),
      stopNode: async (slot) => {
        slot.process.child.kill("SIGTERM")
        // The drain takes at most the 10 s grace period plus the 5 s leave.
        await waitFor(`${slot.nodeId} to exit`, () => !isRunning(slot), 30_000)
      },
      startNode: async (slot) => {
        Object.assign(slot, await launch(slot.host))
        await waitConverged(cluster)
      },
      running: () => nodes.filter(isRunning),
      warnings: (since) => {
        const lines: Array<string> = balancerErrors(`${network.dir}/nginx`, since).map(
          (line) => `balancer: ${line}`,
        )
        for (const [started, name] of names) {
          for (const log of started.logs) {
            if ((log.level !== "warn" && log.level !== "error") || Date.parse(String(log.ts)) < since)
              continue
            const { level: _, ts: __, subsystem: ___, msg, ...fields } = log
            lines.push(`${name}: ${msg} ${JSON.stringify(fields)}`)
          }
        }
        const counts = new Map<string, number>()
        for (const line of lines) counts.set(line, (counts.get(line) ?? 0) + 1)
        return [...counts].map(([line, count]) => (count === 1 ? line : `${line} (×${count})`))
      },
      teardown,
    }
    await waitConverged(cluster)
    return cluster
  } catch (error) {
    await teardown()
    throw error
  }
}
