import type { NodeSummary } from "../../src/Domain/Status.js"
import { request, waitFor } from "../support/http.js"
import {
  adminGet,
  type ChaosCluster,
  ENDPOINT,
  membershipErrors,
  type NodeSlot,
  waitConverged,
} from "./cluster.js"
import { type Figures, figures, lostLines, type Phase } from "./figures.js"
import { type Load, startLoad } from "./load.js"

/**
 * The chaos scenarios. Each runs steady load through the balancer while it breaks something, and returns its
 * figures; the tests (Chaos.test.ts) assert on them. Phases are delimited by conditions (so many more requests,
 * the cluster converged), never by sleeping, except where the scenario itself is a duration (a 30 s partition).
 */

/** The agent's --server.heartbeat-interval (its default). */
const AGENT_HEARTBEAT_MS = 10_000

/** Requests each quiet phase (before the trouble, after recovery) must see: a few seconds of load. */
const STEADY_REQUESTS = 300

const moreRequests = (load: Load, count = STEADY_REQUESTS) => {
  const target = load.records.length + count
  return waitFor(`${count} more requests`, () => load.records.length >= target, 60_000)
}

/** The `ts` of the first log line with `msg` logged after `since`, as wall-clock milliseconds. */
const loggedAfter = (logs: ReadonlyArray<Record<string, unknown>>, msg: string, since: number) =>
  logs.map((log) => (log.msg === msg ? Date.parse(String(log.ts)) : Number.NaN)).find((ts) => ts >= since)

/**
 * Each node in turn, as an operator rolls a cluster behind NGINX: take it out of the balancer, SIGTERM it, start it
 * again under a new id once it exited, wait for the cluster to converge, put it back. Taking it out first is what
 * makes the roll lossless: a node that closes its listener while the balancer still sends to it has the kernel
 * reset the connections in its accept queue, and NGINX does not retry a POST it has sent (docs/operations.md).
 */
export const rollingRestart = async (cluster: ChaosCluster): Promise<Figures> => {
  const started = Date.now()
  const load = startLoad(cluster.balancerUrl, ENDPOINT)
  await moreRequests(load)
  // Phases follow each other without a gap, so every request falls in one.
  let from = Date.now()
  const phases: Array<Phase> = [{ name: "before", from: started, to: from }]
  const timings: Record<string, number> = {}
  for (const slot of cluster.nodes) {
    // The agent's new session lands on the balancer's next node, so usually each restart moves it once more.
    const held = (await cluster.holder()) === slot ? " (holding the agent)" : ""
    const takingOut = Date.now()
    await cluster.setBalancerDown([slot])
    const stopping = Date.now()
    await cluster.stopNode(slot)
    const exited = Date.now()
    await cluster.startNode(slot)
    const to = Date.now()
    phases.push({ name: `restart ${slot.host.name}${held}`, from, to })
    timings[`${slot.host.name}: out of the balancer (reload)`] = stopping - takingOut
    timings[`${slot.host.name}: SIGTERM → exited`] = exited - stopping
    timings[`${slot.host.name}: started → joined and ready`] = to - exited
    from = to
  }
  await cluster.setBalancerDown([])
  await moreRequests(load)
  await load.stop()
  phases.push({ name: "after", from, to: Date.now() })
  return figures({
    scenario: "rolling restart",
    records: load.records,
    started,
    phases,
    timings,
    logged: cluster.warnings(started),
  })
}

export interface KillFigures extends Figures {
  /** Lost requests that did not fail between the kill and the moment every node could route again. */
  readonly outsideWindow: ReadonlyArray<string>
}

/** SIGKILL the node holding the agent's session; the agent reconnects through the balancer to another node. */
export const killHolder = async (cluster: ChaosCluster): Promise<KillFigures> => {
  const started = Date.now()
  const load = startLoad(cluster.balancerUrl, ENDPOINT)
  await moreRequests(load)
  // An agent reconnects at once only from a session that lived past its heartbeat interval (else it backs off
  // for about 1 s, as after a failed connect); a long-running agent's session always has.
  const connected = Math.max(
    ...cluster.agent.logs.filter((log) => log.msg === "connected").map((log) => Date.parse(String(log.ts))),
  )
  await waitFor(
    "the agent's session to count as healthy",
    () => Date.now() - connected > AGENT_HEARTBEAT_MS,
    AGENT_HEARTBEAT_MS + 5000,
  )
  const holder = await cluster.holder()
  const killed = Date.now()
  holder.process.child.kill("SIGKILL")
  await holder.process.exited
  await waitFor(
    "the agent to reconnect",
    () => loggedAfter(cluster.agent.logs, "connected", killed) !== undefined,
    30_000,
  )
  const disconnected = loggedAfter(cluster.agent.logs, "disconnected", killed) as number
  const reconnected = loggedAfter(cluster.agent.logs, "connected", killed) as number
  // Every surviving node knows the new holder (the dead one may still be listed: it did not leave).
  await waitConverged(cluster)
  const routable = Date.now()
  await moreRequests(load)
  await load.stop()
  const lost = load.records.filter((record) => record.failure !== undefined)
  const phases = [
    { name: "before", from: started, to: killed },
    { name: "kill → routable everywhere", from: killed, to: routable },
    { name: "after", from: routable, to: Date.now() },
  ]
  const timings: Record<string, number> = {
    "kill → agent saw its session end": disconnected - killed,
    "kill → agent reconnected": reconnected - killed,
    "kill → routable from every node": routable - killed,
  }
  if (lost.length > 0) {
    const first = Math.min(...lost.map((record) => record.start))
    const last = Math.max(...lost.map((record) => record.end))
    timings["failure window (first failure → last failure)"] = last - first
    timings["kill → last failure"] = last - killed
  }
  // A request fails "between the kill and the reconnect" if it was in flight at some moment of that window.
  const outside = lost.filter((record) => record.end < killed || record.start > routable)
  return {
    ...figures({
      scenario: "SIGKILL of the agent's node",
      records: load.records,
      started,
      phases,
      timings,
      logged: cluster.warnings(started),
    }),
    outsideWindow: lostLines(outside, started, phases),
  }
}

/** Polls one node's proxy port directly until it serves `endpointId`. */
const servesDirectly = (cluster: ChaosCluster, slot: NodeSlot, endpointId: string, timeoutMs: number) =>
  waitFor(
    `${slot.nodeId} to route ${endpointId}`,
    async () => {
      const response = await request(cluster.proxyUrl(slot), {
        headers: { "x-pico-endpoint": endpointId },
        timeoutMs: 5000,
      }).catch(() => undefined)
      return response?.body === "ok"
    },
    timeoutMs,
  )

/**
 * Loss on every host's link; an endpoint registered during it must become routable from every node. `also` names
 * what else the cluster's network does (a gossip delay), for the figures.
 */
export const packetLoss = async (cluster: ChaosCluster, probability: number, also = ""): Promise<Figures> => {
  const started = Date.now()
  const load = startLoad(cluster.balancerUrl, ENDPOINT)
  await moreRequests(load)
  const lossFrom = Date.now()
  await cluster.network.loss(probability)
  const agentStarted = Date.now()
  const agent = await cluster.startAgent("late")
  const registered = loggedAfter(agent.logs, "connected", agentStarted) as number
  const timings: Record<string, number> = { "late agent started → connected": registered - agentStarted }
  await Promise.all(
    cluster.running().map(async (slot) => {
      await servesDirectly(cluster, slot, "late", 60_000)
      timings[`connected → routable via ${slot.host.name}`] = Date.now() - registered
    }),
  )
  timings["connected → routable via every node"] = Date.now() - registered
  // Through lossy links a request often waits out a retransmission (a lost SYN costs 1 s): fewer will do.
  await moreRequests(load, 100)
  const lossTo = Date.now()
  await cluster.network.heal()
  await moreRequests(load)
  await load.stop()
  const phases = [
    { name: "before", from: started, to: lossFrom },
    { name: `${probability * 100}% loss`, from: lossFrom, to: lossTo },
    { name: "after", from: lossTo, to: Date.now() },
  ]
  return figures({
    scenario: `${probability * 100}% packet loss${also === "" ? "" : `, ${also}`}`,
    records: load.records,
    started,
    phases,
    timings,
    logged: cluster.warnings(started),
  })
}

export interface PartitionFigures extends Figures {
  /** What the nodes list that is not exactly the live nodes, all active, once healed (empty: no ghost). */
  readonly membershipErrors: ReadonlyArray<string>
  /** Requests sent to each node directly after healing that failed (empty: no stale route). */
  readonly directFailures: ReadonlyArray<string>
  /**
   * Requests lost that had ended before the cut. The "before" phase counts requests by their start, so it also
   * holds those still in flight through the node at the cut, which the partition may cost.
   */
  readonly lostBeforeCut: number
}

/** Cuts one node (one that does not hold the agent) off from the other nodes for `durationMs`, then heals. */
export const partition = async (cluster: ChaosCluster, durationMs = 30_000): Promise<PartitionFigures> => {
  const started = Date.now()
  const load = startLoad(cluster.balancerUrl, ENDPOINT)
  await moreRequests(load)
  const holder = await cluster.holder()
  const isolated = cluster.nodes.find((slot) => slot !== holder) as NodeSlot
  const peers = cluster.nodes.filter((slot) => slot !== isolated)
  const cut = Date.now()
  await cluster.network.partition(
    isolated.host,
    peers.map((slot) => slot.host),
  )
  // The partition lasts a given time; meanwhile, note when each side's failure detector gives up on the other.
  const noticed: Record<string, number> = {}
  const notice = async (name: string, observer: NodeSlot, targets: ReadonlyArray<NodeSlot>) => {
    if (noticed[name] !== undefined) return
    const view = await adminGet<Array<NodeSummary>>(observer, "/status/cluster/nodes").catch(() => [])
    const unreachable = targets.every((target) =>
      view.some((known) => known.id === target.nodeId && known.status !== "active"),
    )
    if (unreachable) noticed[name] = Date.now() - cut
  }
  await waitFor(
    "the end of the partition",
    async () => {
      await notice(`cut → ${isolated.host.name} sees its peers unreachable`, isolated, peers)
      await notice(`cut → ${holder.host.name} sees ${isolated.host.name} unreachable`, holder, [isolated])
      return Date.now() - cut >= durationMs
    },
    durationMs + 30_000,
  )
  const healed = Date.now()
  await cluster.network.heal()
  let errors: ReadonlyArray<string> = []
  await waitFor(
    "every node to list exactly the live nodes, all active",
    async () => {
      errors = await membershipErrors(cluster)
      return errors.length === 0
    },
    60_000,
  ).catch(() => {}) // The test asserts on the errors left, which say more than a timeout.
  const converged = Date.now()
  await moreRequests(load)
  await load.stop()
  const directFailures: Array<string> = []
  for (const slot of cluster.nodes) {
    for (let i = 0; i < 20; i++) {
      const failure = await request(cluster.proxyUrl(slot), {
        headers: { "x-pico-endpoint": ENDPOINT },
        timeoutMs: 20_000,
      }).then(
        (response) => (response.body === "ok" ? undefined : `${response.status} ${response.body}`),
        (error: Error) => error.message,
      )
      if (failure !== undefined) directFailures.push(`via ${slot.host.name}: ${failure}`)
    }
  }
  const result = figures({
    scenario: `partition of ${isolated.host.name} for ${durationMs / 1000} s`,
    records: load.records,
    started,
    phases: [
      { name: "before", from: started, to: cut },
      { name: "during", from: cut, to: healed },
      { name: "heal → converged", from: healed, to: converged },
      { name: "after", from: converged, to: Date.now() },
    ],
    timings: { ...noticed, "heal → every node lists exactly the live nodes": converged - healed },
    logged: cluster.warnings(started),
  })
  const lostBeforeCut = load.records.filter(
    (record) => record.end < cut && record.failure !== undefined,
  ).length
  return { ...result, membershipErrors: errors, directFailures, lostBeforeCut }
}
