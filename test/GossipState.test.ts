import { describe, expect, it } from "@effect/vitest"
import { FailureDetector } from "../src/Gossip/FailureDetector.js"
import { type DigestRow, RowState } from "../src/Gossip/Message.js"
import { ClusterState, COMPACT_KEY, type GossipEvent, LEFT_KEY } from "../src/Gossip/State.js"

const expiry = 60_000

const node = (id: string, startedAt = 0, rival?: (addr: string) => void) => {
  const events: Array<GossipEvent> = []
  const detector = new FailureDetector(1000)
  const state = new ClusterState({
    selfId: id,
    selfAddr: `${id}:8003`,
    startedAt,
    nodeExpiry: expiry,
    compactionThreshold: 100,
    phiThreshold: 8,
    detector,
    emit: (event) => events.push(event),
    rival,
  })
  return { id, state, events, detector }
}
type Node = ReturnType<typeof node>

/** One complete exchange from `from` to `to`, as the engine runs it: digest, delta back, reply digest, delta. */
const gossip = (from: Node, to: Node, now = 0) => {
  const digest = from.state.digest()
  const { reply } = to.state.applyDigest(digest, from.id, now)
  from.state.applyDeltas(to.state.deltaFor(digest, false), to.id, now)
  if (reply.length > 0) {
    from.state.applyDigest(reply, to.id, now)
    to.state.applyDeltas(from.state.deltaFor(reply, false), from.id, now)
  }
}

/** What a join does: the joiner's state and digest in, everything it lacks back. */
const join = (joiner: Node, to: Node, now = 0) => {
  to.state.applyDeltas([joiner.state.localDelta(0)], joiner.id, now)
  joiner.state.applyDeltas(to.state.deltaFor(joiner.state.digest(), true), to.id, now)
}

const liveEntries = (of: Pick<Node, "state">, id: string) =>
  Object.fromEntries(
    (of.state.nodeView(id)?.entries ?? [])
      .filter((e) => !e.deleted && !e.internal)
      .map((e) => [e.key, e.value]),
  )

const ids = (of: Node) => of.state.nodeViews().map((view) => view.id)

const addrs = (peers: ReadonlyArray<{ readonly addr: string }>) => peers.map((peer) => peer.addr)

describe("ClusterState: local entries", () => {
  it("upserts bump the version only on change; deletes leave tombstones", () => {
    const { state } = node("a")
    expect(state.setLocal("k", "1")).toBe(true)
    expect(state.setLocal("k", "1")).toBe(false)
    expect(state.localVersion).toBe(1)
    expect(state.setLocal("k", "2")).toBe(true)
    expect(state.setLocal("j", "x")).toBe(true)
    expect(state.localVersion).toBe(3)
    expect(state.deleteLocal("k")).toBe(true)
    expect(state.deleteLocal("k")).toBe(false)
    expect(state.deleteLocal("missing")).toBe(false)
    expect(state.localVersion).toBe(4)
    expect([...state.localEntries()]).toEqual([["j", "x"]])
    expect(state.nodeView("a")?.entries).toEqual([
      { key: "j", value: "x", version: 3, internal: false, deleted: false },
      { key: "k", value: "", version: 4, internal: false, deleted: true },
    ])
    expect(state.setLocal("k", "3")).toBe(true)
    expect(state.localEntries().get("k")).toBe("3")
  })

  it("compacts at 100 tombstones: live entries re-versioned above the cut, tombstones gone", () => {
    const { state } = node("a")
    state.setLocal("keep", "yes")
    for (let i = 0; i < 100; i++) state.setLocal(`k${i}`, "v")
    for (let i = 0; i < 99; i++) state.deleteLocal(`k${i}`)
    expect(state.nodeView("a")?.entries.filter((e) => e.deleted)).toHaveLength(99)
    state.deleteLocal("k99")
    const entries = state.nodeView("a")?.entries ?? []
    expect(entries.map((e) => [e.key, e.value, e.version])).toEqual([
      ["keep", "yes", 202],
      [COMPACT_KEY, "201", 203],
    ])
    expect(state.localVersion).toBe(203)
  })

  it("counts a deleted key set again as live: compaction waits for 100 tombstones at once", () => {
    const { state } = node("a")
    for (let i = 0; i < 100; i++) state.setLocal(`k${i}`, "v")
    for (let i = 0; i < 99; i++) state.deleteLocal(`k${i}`)
    state.setLocal("k0", "again")
    state.deleteLocal("k99")
    expect(state.nodeView("a")?.entries.filter((e) => e.deleted)).toHaveLength(99)
    state.deleteLocal("k0")
    expect(state.nodeView("a")?.entries.map((e) => e.key)).toEqual([COMPACT_KEY])
  })

  it("leaves once, with an internal entry", () => {
    const { state } = node("a")
    expect(state.leave()).toBe(true)
    expect(state.leave()).toBe(false)
    expect(state.nodeView("a")).toMatchObject({ status: "left", version: 1 })
    expect(state.nodeView("a")?.entries).toEqual([
      { key: LEFT_KEY, value: "", version: 1, internal: true, deleted: false },
    ])
    expect(state.localEntries().size).toBe(0)
  })
})

describe("ClusterState: digests and deltas", () => {
  it("a joiner receives every node's own entries, each applied to its node", () => {
    const [a, b, c, d] = [node("a"), node("b"), node("c"), node("d")]
    a.state.setLocal("endpoint:a", "1")
    b.state.setLocal("endpoint:b", "2")
    b.state.setLocal("proxy_addr", "b:8000")
    c.state.setLocal("endpoint:c", "3")
    join(b, a)
    join(c, a)
    join(d, a)
    expect(ids(d).sort()).toEqual(["a", "b", "c", "d"])
    expect(liveEntries(d, "a")).toEqual({ "endpoint:a": "1" })
    expect(liveEntries(d, "b")).toEqual({ "endpoint:b": "2", proxy_addr: "b:8000" })
    expect(liveEntries(d, "c")).toEqual({ "endpoint:c": "3" })
    expect(d.state.nodeView("b")?.version).toBe(2)
    expect(d.events.filter((e) => e._tag === "NodeJoined").map((e) => e.nodeId)).toEqual(["a", "b", "c"])
  })

  it("sends only what is newer than the digest, ascending, and pulls what it lacks", () => {
    const [a, b] = [node("a"), node("b")]
    for (const v of ["1", "2", "3"]) a.state.setLocal(`k${v}`, v)
    join(b, a)
    a.state.setLocal("k1", "changed")
    a.state.setLocal("k4", "4")
    const delta = a.state.deltaFor(b.state.digest(), false)
    expect(delta).toEqual([
      {
        id: "a",
        addr: "a:8003",
        heartbeat: 0,
        after: 3,
        entries: [
          ["k1", "changed", 4, 0],
          ["k4", "4", 5, 0],
        ],
      },
    ])
    b.state.setLocal("mine", "x")
    gossip(a, b)
    expect(liveEntries(b, "a")).toEqual({ k1: "changed", k2: "2", k3: "3", k4: "4" })
    expect(liveEntries(a, "b")).toEqual({ mine: "x" })
    expect(a.state.deltaFor(b.state.digest(), false)).toEqual([])
    expect(b.state.deltaFor(a.state.digest(), false)).toEqual([])
  })

  it("drops a delta that starts beyond what it holds, rather than skip entries for good", () => {
    const [a, b] = [node("a"), node("b")]
    a.state.setLocal("k1", "1")
    join(b, a)
    const before = a.state.localVersion
    a.state.setLocal("k2", "2")
    const lost = a.state.localDelta(before)
    a.state.setLocal("k3", "3")
    const next = a.state.localDelta(lost.entries.length + before)
    b.state.applyDeltas([next], "a", 0)
    expect(b.state.nodeView("a")?.version).toBe(1)
    b.state.applyDeltas([lost, next, next], "a", 0)
    expect(b.state.nodeView("a")?.version).toBe(3)
    expect(liveEntries(b, "a")).toEqual({ k1: "1", k2: "2", k3: "3" })
  })

  it("spreads deletes and compaction, with events only for real changes", () => {
    const [a, b, late] = [node("a"), node("b"), node("late")]
    a.state.setLocal("keep", "1")
    for (let i = 0; i < 100; i++) a.state.setLocal(`k${i}`, "v")
    join(b, a)
    a.state.deleteLocal("k0")
    gossip(a, b)
    expect(b.events.at(-1)).toEqual({ _tag: "KeyDeleted", nodeId: "a", key: "k0" })
    for (let i = 1; i < 100; i++) a.state.deleteLocal(`k${i}`)
    b.events.length = 0
    gossip(a, b)
    expect(liveEntries(b, "a")).toEqual({ keep: "1" })
    expect(b.state.nodeView("a")?.entries.some((e) => e.deleted)).toBe(false)
    expect(b.events.filter((e) => e._tag === "KeyUpdated")).toEqual([])
    expect(b.events.filter((e) => e._tag === "KeyDeleted")).toHaveLength(99)
    join(late, b)
    expect(liveEntries(late, "a")).toEqual({ keep: "1" })
  })

  it("ignores a delayed delta older than what it holds", () => {
    const [a, b] = [node("a"), node("b")]
    a.state.setLocal("k", "1")
    const delayed = a.state.localDelta(0)
    a.state.setLocal("k", "2")
    join(b, a)
    b.state.applyDeltas([delayed], "a", 0)
    expect(liveEntries(b, "a")).toEqual({ k: "2" })
    expect(b.state.nodeView("a")?.version).toBe(2)
  })

  it("sends and replays entries in the order they were written, a rewritten key last", () => {
    const [a, b, late] = [node("a"), node("b"), node("late")]
    a.state.setLocal("x", "1")
    a.state.setLocal("y", "1")
    join(b, a)
    a.state.setLocal("x", "2")
    gossip(a, b)
    join(late, a)
    expect(liveEntries(late, "a")).toEqual({ x: "2", y: "1" })
    expect(b.state.replay()).toEqual([
      { _tag: "NodeJoined", nodeId: "a" },
      { _tag: "KeyUpdated", nodeId: "a", key: "y", value: "1" },
      { _tag: "KeyUpdated", nodeId: "a", key: "x", value: "2" },
    ])
  })

  it("gives the same local delta from any version, through rewrites, deletes, a compaction and a leave", () => {
    const a = node("a")
    /** Every entry newer than `after`, in version order, from the node's own view of itself. */
    const expected = (after: number) =>
      (a.state.nodeView("a")?.entries ?? [])
        .filter((entry) => entry.version > after)
        .map((entry) => [entry.key, entry.value, entry.version])
    const check = () => {
      for (let after = 0; after <= a.state.localVersion; after++)
        expect(
          a.state.localDelta(after).entries.map(([key, value, version]) => [key, value, version]),
        ).toEqual(expected(after))
    }
    for (let i = 0; i < 60; i++) a.state.setLocal(`k${i % 40}`, `v${i}`)
    check()
    for (let i = 0; i < 40; i += 2) a.state.deleteLocal(`k${i}`)
    a.state.setLocal("k0", "back")
    check()
    // The 100th tombstone compacts: the live entries are written again above the cut.
    for (let i = 0; i < 120; i++) a.state.setLocal(`t${i}`, "v")
    for (let i = 0; i < 120; i++) a.state.deleteLocal(`t${i}`)
    check()
    a.state.leave()
    check()
    expect(a.state.localDelta(a.state.localVersion - 1).entries.map(([key]) => key)).toEqual([
      "_internal:left",
    ])
  })

  it("marks compaction and departure with the wire's internal keys", () => {
    const a = node("a")
    for (let i = 0; i < 100; i++) a.state.setLocal(`k${i}`, "v")
    for (let i = 0; i < 100; i++) a.state.deleteLocal(`k${i}`)
    a.state.leave()
    expect(a.state.localDelta(0).entries.map(([key]) => key)).toEqual(["_internal:compact", "_internal:left"])
  })

  it("replays the remote state as events, a status only when not active", () => {
    const [a, b, c] = [node("a"), node("b"), node("c")]
    a.state.setLocal("x", "1")
    a.state.setLocal("gone", "1")
    join(b, a)
    join(b, c)
    a.state.deleteLocal("gone")
    a.state.leave()
    gossip(a, b)
    expect(b.state.replay()).toEqual([
      { _tag: "NodeJoined", nodeId: "a" },
      { _tag: "KeyUpdated", nodeId: "a", key: "x", value: "1" },
      { _tag: "NodeStatusChanged", nodeId: "a", status: "left" },
      { _tag: "NodeJoined", nodeId: "c" },
    ])
  })

  it("lists itself among the nodes, active", () => {
    expect(node("a").state.nodeViews()).toEqual([
      { id: "a", addr: "a:8003", version: 0, status: "active", expiresAt: undefined },
    ])
  })
})

describe("ClusterState: liveness, expiry and ghosts", () => {
  /** b knows a and c; a's heartbeats reached b at 0 and 1000. */
  const cluster = () => {
    const [a, b, c] = [node("a"), node("b"), node("c")]
    a.state.setLocal("endpoint:e", "1")
    join(b, a)
    join(c, a)
    gossip(c, b)
    a.state.tick()
    b.state.heardFrom(a.state.sender(), 1000)
    return { a, b, c }
  }

  /** Time passes for b, second by second: the `alive` nodes keep ticking and b hears each tick. */
  const passTime = (b: Node, alive: ReadonlyArray<Node>, from: number, to: number) => {
    for (let now = from; now <= to; now += 1000) {
      for (const other of alive) {
        other.state.tick()
        b.state.heardFrom(other.state.sender(), now)
      }
      b.state.checkLiveness(now)
      b.state.expire(now)
    }
  }

  it("marks a silent node unreachable, active again when it is heard, and removes it after expiry", () => {
    const { a, b, c } = cluster()
    passTime(b, [c], 2000, 19_000)
    expect(b.state.nodeView("a")?.status).toBe("active")
    expect(addrs(b.state.livePeers())).toEqual(["a:8003", "c:8003"])
    passTime(b, [c], 20_000, 20_000)
    expect(b.state.nodeView("a")).toMatchObject({ status: "unreachable", expiresAt: 80_000 })
    expect(addrs(b.state.probeTargets())).toEqual(["a:8003"])
    expect(addrs(b.state.livePeers())).toEqual(["c:8003"])
    a.state.tick()
    b.state.heardFrom(a.state.sender(), 21_000)
    passTime(b, [c], 21_000, 21_000)
    expect(b.state.nodeView("a")).toMatchObject({ status: "active", expiresAt: undefined })
    // The mean interval is now (1 + 1 + 20) / 3 s, so suspicion takes 18.4 × 7.3 s of silence.
    passTime(b, [c], 22_000, 156_000)
    expect(b.state.nodeView("a")?.status).toBe("active")
    passTime(b, [c], 157_000, 216_000)
    expect(b.state.nodeView("a")).toMatchObject({ status: "unreachable", expiresAt: 217_000 })
    passTime(b, [c], 217_000, 217_000)
    expect(ids(b)).toEqual(["b", "c"])
    expect(b.events.filter((e) => e.nodeId === "a").map((e) => e._tag)).toEqual([
      "NodeJoined",
      "KeyUpdated",
      "NodeStatusChanged",
      "NodeStatusChanged",
      "NodeStatusChanged",
      "NodeRemoved",
    ])
  })

  it("does not bring a removed node back from third parties' stale state", () => {
    const { a, b, c } = cluster()
    passTime(b, [c], 2000, 80_000)
    expect(ids(b)).toEqual(["b", "c"])
    // c still has a (at an older heartbeat): its digest and deltas do not resurrect it.
    expect(b.state.applyDigest(c.state.digest(), "c", 81_000).probes).toEqual([])
    b.state.applyDeltas(c.state.deltaFor([], true), "c", 81_000)
    expect(ids(b)).not.toContain("a")
    // A third party that heard from a after its removal makes b ask a itself, once, but not re-add it.
    a.state.tick()
    a.state.tick()
    gossip(a, c)
    expect(b.state.applyDigest(c.state.digest(), "c", 82_000).probes).toEqual([{ id: "a", addr: "a:8003" }])
    expect(b.state.applyDigest(c.state.digest(), "c", 82_000).probes).toEqual([])
    expect(ids(b)).not.toContain("a")
    // Deltas carry the same news: a newer heartbeat heard by a third party is worth one more probe.
    a.state.tick()
    gossip(a, c)
    expect(b.state.applyDeltas(c.state.deltaFor([], true), "c", 83_000)).toEqual([
      { id: "a", addr: "a:8003" },
    ])
    expect(ids(b)).not.toContain("a")
  })

  it("readmits a removed node only on newer evidence from the node itself", () => {
    const { a, b, c } = cluster()
    const delayed = a.state.digest()
    passTime(b, [c], 2000, 80_000)
    b.state.applyDigest(delayed, "a", 81_000)
    expect(ids(b)).not.toContain("a")
    a.state.tick()
    expect(b.state.applyDigest(a.state.digest(), "a", 82_000)).toMatchObject({ probes: [] })
    expect(b.state.nodeView("a")).toMatchObject({ status: "active", version: 0 })
    // Its death certificate is gone with it: the digest lists it once, live.
    expect(
      b.state
        .digest()
        .filter(([id]) => id === "a")
        .map((row) => row[4]),
    ).toEqual([RowState.live])
    gossip(a, b, 82_000)
    expect(liveEntries(b, "a")).toEqual({ "endpoint:e": "1" })
  })

  it("spreads a death: peers that have not heard from the node since remove it too", () => {
    const { a, b, c } = cluster()
    const fresher = node("d")
    join(fresher, a)
    passTime(b, [c], 2000, 80_000)
    const certificate = b.state.digest().find(([id]) => id === "a")
    expect(certificate?.[4]).toBe(RowState.removed)
    c.state.applyDigest(b.state.digest(), "b", 80_500)
    expect(ids(c)).not.toContain("a")
    expect(c.events.at(-1)).toEqual({ _tag: "NodeRemoved", nodeId: "a" })
    // d heard a at a later heartbeat than b did: it keeps a, which is then probed, not adopted, by the others.
    a.state.tick()
    a.state.tick()
    gossip(a, fresher)
    fresher.state.applyDigest(b.state.digest(), "b", 80_500)
    expect(ids(fresher)).toContain("a")
    // A node that never knew a learns the certificate and will not adopt it from a laggard.
    const joiner = node("e")
    join(joiner, b)
    joiner.state.applyDigest(b.state.digest(), "b", 81_000)
    joiner.state.applyDeltas(a.state.deltaFor([], true), "c", 81_000)
    expect(ids(joiner)).not.toContain("a")
  })

  it("asks for refutation when a peer says we are dead", () => {
    const { a, b, c } = cluster()
    passTime(b, [c], 2000, 80_000)
    expect(a.state.applyDigest(c.state.digest(), "c", 80_000).refute).toBe(false)
    expect(a.state.applyDigest(b.state.digest(), "b", 80_000).refute).toBe(true)
    expect(addrs(b.state.probeTargets())).toEqual(["a:8003"])
  })

  it("never rediscovers a node that left", () => {
    const [a, b, c] = [node("a"), node("b"), node("c")]
    join(b, a)
    join(c, a)
    a.state.leave()
    gossip(a, b, 1000)
    expect(b.state.nodeView("a")).toMatchObject({ status: "left", expiresAt: 61_000 })
    expect(b.events.at(-1)).toEqual({ _tag: "NodeStatusChanged", nodeId: "a", status: "left" })
    b.state.expire(61_000)
    // Its death certificate keeps it from coming back, but is not spread: it left, nobody needs telling.
    expect(b.state.digest().some(([id]) => id === "a")).toBe(false)
    expect(addrs(b.state.probeTargets())).toEqual([])
    a.state.tick()
    b.state.applyDigest(a.state.digest(), "a", 62_000)
    b.state.applyDeltas([a.state.localDelta(0)], "a", 62_000)
    const stranger = node("d")
    stranger.state.applyDigest(a.state.digest(), "a", 62_000)
    stranger.state.applyDeltas([a.state.localDelta(0)], "a", 62_000)
    expect(ids(b)).not.toContain("a")
    expect(ids(stranger)).not.toContain("a")
  })

  it("takes a node that left back only from a live row well past the heartbeat it left with, its own or another's", () => {
    for (const [removedFirst, from] of [
      [false, "a"],
      [true, "a"],
      [false, "c"],
      [true, "c"],
    ] as const) {
      const [a, b] = [node("a"), node("b")]
      join(b, a)
      for (let round = 0; round < 10; round++) a.state.tick()
      gossip(a, b, 1000)
      // A late datagram of the old process, sent before it left: live, and a little past what b last heard.
      const late = a.state.digest()
      const lateRow = late.find(([id]) => id === "a") as DigestRow
      late.splice(late.indexOf(lateRow), 1, ["a", "a:8003", lateRow[2], 60, RowState.live])
      a.state.leave()
      gossip(a, b, 2000)
      if (removedFirst) b.state.expire(62_000)
      const shown = () => (ids(b).includes("a") ? b.state.nodeView("a")?.status : "removed")
      const before = removedFirst ? "removed" : "left"
      b.state.applyDigest(late, from, 62_000)
      expect(shown()).toBe(before)
      // The same id in a new process: its heartbeat starts at its start time. A third party's view of it will do.
      const restarted = node("a", 90_000)
      if (from === "a") b.state.heardFrom(restarted.state.sender(), 90_500)
      b.state.applyDigest(restarted.state.digest(), from, 90_500)
      expect(shown()).toBe("active")
    }
  })

  it("refutes a peer that has it left or removed once it can pass the peer's heartbeat, and never otherwise", () => {
    const a = node("a", 1000)
    // A peer's certificate, as a reply to a's own row: a's heartbeat jumps past it, and a answers at once.
    expect(a.state.applyDigest([["a", "a:8003", 0, 5000, RowState.removed]], "b", 100_000).refute).toBe(true)
    expect(a.state.sender().heartbeat).toBe(5101)
    // A forged row at the counters' limit cannot be passed: answering it would only bring the same row back, as
    // fast as packets travel.
    const limit = 2 ** 52
    expect(a.state.applyDigest([["a", "a:8003", 0, limit, RowState.removed]], "b", 100_000).refute).toBe(
      false,
    )
    expect(a.state.applyDigest([["a", "a:8003", limit, limit, RowState.left]], "b", 100_000).refute).toBe(
      false,
    )
    expect(a.state.sender().heartbeat).toBe(5101)
    // A node that left itself does not speak up.
    a.state.leave()
    expect(a.state.applyDigest([["a", "a:8003", 0, 9000, RowState.removed]], "b", 100_000).refute).toBe(false)
  })

  it("names the address of another live process with its id, once past its first minute, and not its own", () => {
    const rivals: Array<string> = []
    const { state: a } = node("a", 1000, (addr) => rivals.push(addr))
    const later = 1000 + expiry + 1
    a.applyDigest([["a", "a:8003", 2000, 900_000, RowState.live]], "b", later)
    a.applyDigest([["a", "other:8003", 2000, 900_000, RowState.live]], "b", later)
    a.applyDeltas([{ id: "a", addr: "other:8003", heartbeat: 900_001, after: 0, entries: [] }], "b", later)
    expect(rivals).toEqual(["other:8003", "other:8003"])
    // It stays behind: outrun, it does not take up the other's counters.
    expect(a.sender().heartbeat).toBe(1000)
    expect(a.localVersion).toBe(1001)
  })

  it("answers a node's own row that its certificate keeps out with the certificate, and only that", () => {
    const { b, c } = cluster()
    passTime(b, [c], 2000, 80_000)
    const certificate: DigestRow = ["a", "a:8003", 0, 1, RowState.removed]
    // Another process with a's id, its heartbeat behind the one b removed: told to speak up.
    expect(b.state.applyDigest([["a", "a:9003", 3, 1, RowState.live]], "a", 80_000).reply).toEqual([
      certificate,
    ])
    // Word of a from a third party is not a's own.
    expect(b.state.applyDigest([["a", "a:9003", 3, 1, RowState.live]], "c", 80_000).reply).toEqual([])
    // Past the certificate, a's own row readmits it: the answer only asks for its entries.
    expect(b.state.applyDigest([["a", "a:9003", 3, 2, RowState.live]], "a", 80_000).reply).toEqual([
      ["a", "a:9003", 0, 2, RowState.live],
    ])
    expect(b.state.nodeView("a")?.status).toBe("active")
  })

  it("catches up, in its first minute, with a live heartbeat of its id once; news ahead again is another process", () => {
    const rivals: Array<string> = []
    const { state: a } = node("a", 1000, (addr) => rivals.push(addr))
    a.setLocal("k", "v")
    const live = (version: number, heartbeat: number, addr = "old:8003"): DigestRow => [
      "a",
      addr,
      version,
      heartbeat,
      RowState.live,
    ]
    const cut = () => a.nodeView("a")?.entries.find((entry) => entry.key === COMPACT_KEY)?.value
    // At the very end of its first minute, a peer still holds the old process, ahead of this one.
    const end = 1000 + expiry
    expect(a.applyDigest([live(5000, 3000)], "b", end).refute).toBe(false)
    expect([a.sender().heartbeat, a.localVersion, cut()]).toEqual([3100, 5002, "5000"])
    expect(liveEntries({ state: a }, "a")).toEqual({ k: "v" })
    // A staler view changes nothing; a newer version of the old process (a peer that heard more of it) is
    // taken up too, its heartbeat being behind.
    a.applyDigest([live(4000, 2990)], "b", end)
    expect([a.sender().heartbeat, a.localVersion]).toEqual([3100, 5002])
    a.applyDeltas(
      [{ id: "a", addr: "old:8003", heartbeat: 3000, after: 0, entries: [["x", "", 7000, 0]] }],
      "b",
      end,
    )
    expect([a.sender().heartbeat, a.localVersion, cut()]).toEqual([3100, 7002, "7000"])
    expect(rivals).toEqual([])
    // A heartbeat past the margin is a live process: this one stays behind it, its versions too, and its
    // heartbeat keeps well below the other's, so that it cannot creep past.
    a.applyDigest([live(9000, 3200, "other:8003")], "b", end)
    a.applyDeltas([{ id: "a", addr: "other:8003", heartbeat: 3250, after: 0, entries: [] }], "b", end)
    expect([a.sender().heartbeat, a.localVersion]).toEqual([3100, 7002])
    expect(rivals).toEqual(["other:8003", "other:8003"])
    for (let round = 0; round < 60; round++) a.tick()
    expect(a.sender().heartbeat).toBe(3149)
    // A view that has this one's heartbeat and another's entries holds those of a process no longer heard.
    a.applyDigest([live(9500, 3000)], "b", end)
    expect([a.sender().heartbeat, a.localVersion, cut()]).toEqual([3149, 9502, "9500"])
    // Once the other has left, it speaks for itself again, and ticks on.
    expect(a.applyDigest([["a", "other:8003", 9600, 3300, RowState.left]], "b", end).refute).toBe(true)
    expect([a.sender().heartbeat, a.localVersion, cut()]).toEqual([3401, 9602, "9600"])
    a.tick()
    expect(a.sender().heartbeat).toBe(3402)
    // It no longer catches up with a live heartbeat, even in its first minute: it did once.
    a.applyDigest([live(9700, 5000, "third:8003")], "b", end)
    expect([a.sender().heartbeat, rivals.at(-1)]).toEqual([3402, "third:8003"])
  })

  it("speaks up when a peer has it left or removed: past the peer's heartbeat, its entries above the peer's", () => {
    const { state: a } = node("a", 1000)
    a.setLocal("k", "v")
    // Long past its first minute: this is not catching up.
    const later = 1000 + 5 * expiry
    // A certificate carries no versions: a peer that removed a node drops all it held of it.
    expect(a.applyDigest([["a", "a:8003", 9000, 6000, RowState.removed]], "b", later).refute).toBe(true)
    expect([a.sender().heartbeat, a.localVersion]).toEqual([6101, 1002])
    // A peer holding it left holds entries up to 8000: this one's go above them, behind a cut.
    expect(a.applyDigest([["a", "a:8003", 8000, 7000, RowState.left]], "b", later).refute).toBe(true)
    expect([a.sender().heartbeat, a.localVersion]).toEqual([7101, 8002])
    // Already past: still answers, as the peer has yet to hear it.
    expect(a.applyDigest([["a", "a:8003", 0, 100, RowState.removed]], "b", later).refute).toBe(true)
    expect(a.sender().heartbeat).toBe(7101)
  })

  it("follows a node to a new address on its own word only, and sends it whole digests once it speaks from there", () => {
    const { a, b } = cluster()
    const heartbeat = b.state.digest().find(([id]) => id === "a")?.[3] ?? 0
    b.state.applyDigest([["a", "elsewhere:8003", 0, heartbeat + 5, RowState.live]], "c", 2000)
    expect(b.state.nodeView("a")?.addr).toBe("a:8003")
    b.state.heardFrom({ ...a.state.sender(), addr: "elsewhere:8003", heartbeat: heartbeat + 6 }, 2500)
    expect(b.state.nodeView("a")?.addr).toBe("elsewhere:8003")
    expect(b.state.digestFor({ id: "a", addr: "elsewhere:8003" }).maxPackets).toBe(Number.POSITIVE_INFINITY)
    expect(b.state.digestFor({ id: "a", addr: "a:8003" }).maxPackets).toBe(8)
  })

  it("sends whole digests only to nodes that spoke to it from their address, and probes with two rows", () => {
    const { a, b, c } = cluster()
    const rowOf = (id: string) => b.state.digest().find(([rowId]) => rowId === id)
    // d is known to b from c's word only, at an address nobody has seen it speak from.
    b.state.applyDigest([["d", "victim:9", 0, 1, RowState.live]], "c", 1000)
    expect(b.state.nodeView("d")?.status).toBe("active")
    const toD = b.state.digestFor({ id: "d", addr: "victim:9" })
    expect(toD.maxPackets).toBe(8)
    expect(toD.rows.slice(0, 2)).toEqual([rowOf("b"), ["d", "victim:9", 0, 1, RowState.live]])
    expect(toD.rows.map(([id]) => id).sort()).toEqual(["a", "b", "c", "d"])
    // c has spoken to b: it gets all of it, at its own address only.
    expect(b.state.digestFor({ id: "c", addr: "c:8003" })).toEqual({
      rows: b.state.digest(),
      maxPackets: Number.POSITIVE_INFINITY,
    })
    expect(b.state.digestFor({ id: "c", addr: "victim:9" }).maxPackets).toBe(8)
    // A message naming a victim's address, but older than what b heard of a, does not make that one spoken for.
    b.state.heardFrom({ ...a.state.sender(), addr: "victim:9", heartbeat: 1 }, 1500)
    expect(b.state.digestFor({ id: "a", addr: "victim:9" }).maxPackets).toBe(8)
    // Silent, the nodes turn unreachable and are probed, each with our row and its own.
    passTime(b, [c], 2000, 40_000)
    expect(addrs(b.state.probeTargets()).sort()).toEqual(["a:8003", "victim:9"])
    expect(b.state.probeDigest({ id: "d", addr: "victim:9" })).toEqual([rowOf("b"), rowOf("d")])
    passTime(b, [c], 41_000, 120_000)
    expect(b.state.probeDigest({ id: "d", addr: "victim:9" })).toEqual([rowOf("b"), rowOf("d")])
    expect(rowOf("d")?.[4]).toBe(RowState.removed)
  })

  it("ignores news of a node at a heartbeat or version no process reaches (forged): it cannot be shut out", () => {
    const { b } = cluster()
    const heartbeat = b.state.digest().find(([id]) => id === "a")?.[3] ?? 0
    b.state.applyDigest([["a", "a:8003", 2 ** 52, 2 ** 52, RowState.live]], "stranger", 1500)
    b.state.applyDigest([["a", "a:8003", 0, 2 ** 52, RowState.removed]], "stranger", 1500)
    b.state.applyDigest([["z", "z:8003", 0, 2 ** 52, RowState.live]], "stranger", 1500)
    b.state.heardFrom({ id: "a", addr: "a:8003", heartbeat: 2 ** 52 }, 1500)
    expect(b.state.nodeView("a")?.status).toBe("active")
    expect(b.state.digest().find(([id]) => id === "a")?.[3]).toBe(heartbeat)
    expect(ids(b)).not.toContain("z")
    b.state.applyDeltas(
      [{ id: "a", addr: "a:8003", heartbeat: heartbeat + 1, after: 0, entries: [["k", "v", 2 ** 52, 0]] }],
      "stranger",
      1500,
    )
    expect(liveEntries(b, "a")).not.toHaveProperty("k")
  })

  it("dates a death certificate from its first removal, wherever it is learned, and does not learn it back", () => {
    const { b, c } = cluster()
    passTime(b, [c], 2000, 80_000)
    const lifetime = 10 * expiry
    const ageAtB = () => b.state.digest().find(([id]) => id === "a")?.[2]
    expect(ageAtB()).toBe(0)
    // Half its life later, d learns it from b: with its age.
    b.state.expire(80_000 + lifetime / 2)
    expect(ageAtB()).toBe(lifetime / 2)
    const later = b.state.digest()
    const d = node("d")
    d.state.applyDigest(later, "b", 500_000)
    d.state.expire(500_000 + lifetime / 2 - 1)
    expect(ids(d)).not.toContain("a")
    expect(d.state.digest().some(([id]) => id === "a")).toBe(true)
    d.state.expire(500_000 + lifetime / 2)
    expect(d.state.digest().some(([id]) => id === "a")).toBe(false)
    // A peer's row of it in the last node-expiry period of its life is not taken back: the one that forgot it
    // last would give it back to the one that forgot it first, and so on.
    d.state.applyDigest([["a", "a:8003", lifetime - expiry, 1, RowState.removed]], "b", 900_000)
    expect(d.state.digest().some(([id]) => id === "a")).toBe(false)
    d.state.applyDigest([["a", "a:8003", lifetime - expiry - 1, 1, RowState.removed]], "b", 900_000)
    expect(d.state.digest().some(([id]) => id === "a")).toBe(true)
  })

  it("lists removed-node rows in the digest until the certificate lapses", () => {
    const { b, c } = cluster()
    passTime(b, [c], 2000, 80_000)
    const removed = (rows: ReadonlyArray<DigestRow>) => rows.filter((row) => row[4] === RowState.removed)
    expect(removed(b.state.digest())).toEqual([["a", "a:8003", 0, 1, RowState.removed]])
    b.state.expire(80_000 + 10 * expiry - 1)
    expect(removed(b.state.digest())).toHaveLength(1)
    b.state.expire(80_000 + 10 * expiry)
    expect(removed(b.state.digest())).toEqual([])
  })

  it("takes a repeated heartbeat for no news: a node heard only at its old one still turns unreachable", () => {
    const { a, b, c } = cluster()
    const stale = a.state.sender()
    for (let now = 2000; now <= 20_000; now += 1000) {
      b.state.heardFrom(stale, now)
      passTime(b, [c], now, now)
    }
    expect(b.state.nodeView("a")?.status).toBe("unreachable")
  })

  it("never suspects a node that left, nor itself", () => {
    const { a, b } = cluster()
    a.state.leave()
    gossip(a, b, 1000)
    b.state.checkLiveness(60_000)
    expect(b.state.nodeView("a")).toMatchObject({ status: "left", expiresAt: 61_000 })
    expect(b.state.nodeView("b")?.status).toBe("active")
  })

  it("ignores a sender it does not know, and has no view of it", () => {
    const b = node("b")
    b.state.heardFrom({ id: "x", addr: "x:8003", heartbeat: 1 }, 0)
    expect(ids(b)).toEqual(["b"])
    expect(b.state.nodeView("x")).toBeUndefined()
  })

  it("keeps the newest death certificate it hears of, and probes only on newer news", () => {
    const { b } = cluster()
    const row = (id: string, addr: string, heartbeat: number, state: DigestRow[4]): DigestRow => [
      id,
      addr,
      0,
      heartbeat,
      state,
    ]
    const removedRows = () => b.state.digest().filter((digestRow) => digestRow[4] === RowState.removed)
    b.state.applyDigest([row("x", "x:8003", 1, RowState.removed), row("y", "", 1, RowState.removed)], "c", 0)
    // x said alive at 10 by a third party: probed once, up to 10.
    expect(b.state.applyDigest([row("x", "x:8003", 10, RowState.live)], "c", 0).probes).toEqual([
      { id: "x", addr: "x:8003" },
    ])
    b.state.applyDigest(
      [row("x", "x:8003", 5, RowState.removed), row("x", "x:8003", 3, RowState.removed)],
      "c",
      0,
    )
    expect(removedRows()).toEqual([
      row("x", "x:8003", 5, RowState.removed),
      row("y", "", 1, RowState.removed),
    ])
    expect(b.state.applyDigest([row("x", "x:8003", 8, RowState.live)], "c", 0).probes).toEqual([])
    expect(b.state.applyDigest([row("x", "x:8003", 11, RowState.live)], "c", 0).probes).toEqual([
      { id: "x", addr: "x:8003" },
    ])
    // A certificate without an address is gossiped on, but there is nobody to probe.
    expect(addrs(b.state.probeTargets())).toEqual(["x:8003"])
  })
})

describe("ClusterState: boundaries and guards", () => {
  const row = (
    id: string,
    version: number,
    heartbeat: number,
    state: DigestRow[4] = RowState.live,
    addr = `${id}:8003`,
  ): DigestRow => [id, addr, version, heartbeat, state]
  const keyUpdate = (key: string, value: string, version: number, flags: 0 | 1 | 2 | 3 = 0) =>
    [key, value, version, flags] as const
  /** a, which has learned of c (heartbeat 5) from c itself, and holds c's entries, if any, from version 0. */
  const knowing = (entries: ReadonlyArray<readonly [string, string, number, 0 | 1 | 2 | 3]> = []) => {
    const a = node("a")
    a.state.applyDeltas([{ id: "c", addr: "c:8003", heartbeat: 5, after: 0, entries: [...entries] }], "c", 0)
    return a
  }
  /** a hears that `id`, which it knows, left (at its version 1). */
  const hearLeft = (a: Node, id: string) =>
    a.state.applyDeltas(
      [{ id, addr: `${id}:8003`, heartbeat: 5, after: 0, entries: [keyUpdate(LEFT_KEY, "", 1, 1)] }],
      id,
      0,
    )
  const certificateOf = (of: Node, id: string) =>
    of.state.digest().find((digestRow) => digestRow[0] === id && digestRow[4] === RowState.removed)

  it("starts a process that reuses an id behind an internal compaction cut at its start time", () => {
    const { state } = node("a", 5000)
    expect(state.nodeView("a")?.entries).toEqual([
      { key: COMPACT_KEY, value: "5000", version: 5001, internal: true, deleted: false },
    ])
    expect(state.localEntries().size).toBe(0)
  })

  it("re-versions live entries in their version order when it compacts, not in the order keys were first set", () => {
    const { state } = node("a")
    state.setLocal("x", "1")
    state.setLocal("y", "1")
    state.setLocal("x", "2")
    for (let i = 0; i < 100; i++) state.setLocal(`k${i}`, "v")
    for (let i = 0; i < 100; i++) state.deleteLocal(`k${i}`)
    expect(state.nodeView("a")?.entries.map((entry) => entry.key)).toEqual(["y", "x", COMPACT_KEY])
  })

  it("changes nothing of itself on a peer's row that holds exactly its own heartbeat and version", () => {
    const a = node("a")
    a.state.setLocal("k", "v")
    for (let i = 0; i < 3; i++) a.state.tick()
    // Young, not caught up yet: a heartbeat equal to its own is no news of another process.
    expect(a.state.applyDigest([row("a", 1, 3)], "b", 0)).toMatchObject({ refute: false })
    expect(a.state.sender().heartbeat).toBe(3)
    expect(a.state.localVersion).toBe(1)
    expect(a.state.nodeView("a")?.entries.map((entry) => entry.key)).toEqual(["k"])
  })

  it("outrun by another live process with its id, and given no callback for it, neither throws nor refutes", () => {
    const a = node("a")
    const later = 10 * expiry
    expect(
      a.state.applyDigest([row("a", 0, 500, RowState.live, "elsewhere:8003")], "b", later),
    ).toMatchObject({ refute: false })
  })

  it("takes no word of itself for a sender's: neither its address nor its heartbeat move", () => {
    const a = node("a")
    a.state.heardFrom({ id: "a", addr: "x:1", heartbeat: 999 }, 0)
    expect(a.state.sender()).toEqual({ id: "a", addr: "a:8003", heartbeat: 0 })
  })

  it("counts a node as having spoken only from the address it knows the node at", () => {
    const a = node("a")
    a.state.applyDigest([row("c", 0, 5)], "b", 0)
    const c = { id: "c", addr: "c:8003" }
    a.state.heardFrom({ id: "c", addr: "elsewhere:1", heartbeat: 5 }, 0)
    expect(a.state.hasSpoken(c)).toBe(false)
    a.state.heardFrom({ id: "c", addr: "c:8003", heartbeat: 6 }, 0)
    expect(a.state.hasSpoken(c)).toBe(true)
    expect(a.state.hasSpoken({ id: "nobody", addr: "nobody:8003" })).toBe(false)
  })

  it("lists unknown nodes in a delta only for a joiner, and never one that left", () => {
    const a = knowing([keyUpdate("endpoint:c", "1", 1)])
    a.state.applyDigest([row("d", 0, 5)], "d", 0)
    hearLeft(a, "d")
    expect(a.state.nodeView("d")?.status).toBe("left")
    expect(a.state.deltaFor([], false)).toEqual([])
    expect(a.state.deltaFor([], true).map((delta) => delta.id)).toEqual(["a", "c"])
    // A removed node's row carries the certificate's age, not a version: it says nothing of what the peer holds.
    expect(a.state.deltaFor([row("c", 0, 5, RowState.removed)], false)).toEqual([])
  })

  it("answers a digest row with its own only when the peer is behind it in heartbeat or ahead in version", () => {
    const a = knowing()
    const replied = (version: number, heartbeat: number) =>
      a.state.applyDigest([row("c", version, heartbeat)], "b", 0).reply.map((digestRow) => digestRow[0])
    expect(replied(0, 5)).toEqual([])
    expect(replied(1, 5)).toEqual(["c"])
    expect(replied(0, 4)).toEqual(["c"])
    expect(replied(0, 6)).toEqual([])
  })

  it("sends a removed node's certificate to the node itself, never to a third party that mentions it", () => {
    const a = knowing()
    a.state.applyDigest([row("c", 0, 5, RowState.removed)], "b", 1000)
    expect(a.state.nodeView("c")).toBeUndefined()
    expect(a.state.applyDigest([row("c", 0, 3)], "b", 1000).reply).toEqual([])
    expect(a.state.applyDigest([row("c", 0, 3)], "c", 1000).reply).toEqual([row("c", 0, 5, RowState.removed)])
  })

  it("removes a node on a certificate at its own heartbeat, dated back by the certificate's age, the earliest kept", () => {
    const a = knowing()
    a.state.applyDigest([row("c", 1000, 5, RowState.removed)], "b", 5000)
    expect(a.state.nodeView("c")).toBeUndefined()
    expect(certificateOf(a, "c")?.[2]).toBe(1000)
    a.state.applyDigest([row("c", 3000, 5, RowState.removed)], "b", 5000)
    expect(certificateOf(a, "c")?.[2]).toBe(3000)
    a.state.applyDigest([row("c", 500, 5, RowState.removed)], "b", 5000)
    expect(certificateOf(a, "c")?.[2]).toBe(3000)
    // The failure detector forgets it: no suspicion of it builds up while it is gone.
    expect(a.detector.phi("c", 10 * expiry)).toBe(0)
  })

  it("readmits a removed node on its own newer word as one that has spoken", () => {
    const a = knowing()
    a.state.applyDigest([row("c", 0, 5, RowState.removed)], "b", 0)
    a.state.applyDigest([row("c", 0, 6)], "c", 0)
    expect(a.state.nodeView("c")?.status).toBe("active")
    expect(a.state.hasSpoken({ id: "c", addr: "c:8003" })).toBe(true)
  })

  it("takes a node that left back from a live row more than 100 heartbeats past the last it was seen left at, never from a left row", () => {
    const a = knowing()
    hearLeft(a, "c")
    expect(a.state.nodeView("c")?.status).toBe("left")
    a.state.applyDigest([row("c", 1, 105)], "b", 0)
    expect(a.state.nodeView("c")?.status).toBe("left")
    // Still running at 205, as left: a live row at 305 is a view from before it left, not a new process.
    a.state.applyDigest([row("c", 1, 205, RowState.left)], "b", 0)
    expect(a.state.nodeView("c")?.status).toBe("left")
    // An older left row does not lower the bar again.
    a.state.applyDigest([row("c", 1, 10, RowState.left)], "b", 0)
    a.state.applyDigest([row("c", 1, 305)], "b", 0)
    expect(a.state.nodeView("c")?.status).toBe("left")
    a.events.length = 0
    a.state.applyDigest([row("c", 1, 306)], "b", 0)
    expect(a.state.nodeView("c")?.status).toBe("active")
    expect(a.events).toEqual([{ _tag: "NodeStatusChanged", nodeId: "c", status: "active" }])
  })

  it("takes no forged left row for the bar a node that left must pass to come back", () => {
    const a = knowing()
    hearLeft(a, "c")
    a.state.applyDigest([row("c", 1, 2 ** 52, RowState.left)], "b", 0)
    a.state.applyDigest([row("c", 1, 1_000_000)], "b", 0)
    expect(a.state.nodeView("c")?.status).toBe("active")
  })

  it("applies a node's entries strictly above the version it holds, and a changed value as an update", () => {
    const a = knowing([keyUpdate("k", "1", 1)])
    a.events.length = 0
    a.state.applyDeltas(
      [{ id: "c", addr: "c:8003", heartbeat: 5, after: 0, entries: [keyUpdate("k", "2", 1)] }],
      "b",
      0,
    )
    expect(liveEntries(a, "c")).toEqual({ k: "1" })
    a.state.applyDeltas(
      [{ id: "c", addr: "c:8003", heartbeat: 5, after: 1, entries: [keyUpdate("k", "2", 2)] }],
      "b",
      0,
    )
    expect(liveEntries(a, "c")).toEqual({ k: "2" })
    expect(a.events).toEqual([{ _tag: "KeyUpdated", nodeId: "c", key: "k", value: "2" }])
  })

  it("tells of a deleted key only if it held the key live", () => {
    const a = knowing([keyUpdate("gone", "", 1, 2), keyUpdate("k", "1", 2)])
    expect(a.events).toEqual([
      { _tag: "NodeJoined", nodeId: "c" },
      { _tag: "KeyUpdated", nodeId: "c", key: "k", value: "1" },
    ])
    a.events.length = 0
    const tombstone = (after: number, version: number) =>
      a.state.applyDeltas(
        [{ id: "c", addr: "c:8003", heartbeat: 5, after, entries: [keyUpdate("k", "", version, 2)] }],
        "c",
        0,
      )
    tombstone(2, 3)
    expect(a.events).toEqual([{ _tag: "KeyDeleted", nodeId: "c", key: "k" }])
    // Deleted again at a newer version (a tombstone of a key set and deleted meanwhile, say): no news.
    tombstone(3, 4)
    expect(a.events).toHaveLength(1)
  })

  it("drops entries up to a compaction cut, the one at the cut too, and keeps a node's compaction from marking it left", () => {
    const a = knowing([keyUpdate("k", "1", 1), keyUpdate("j", "1", 2), keyUpdate("i", "1", 3)])
    a.state.applyDeltas(
      [{ id: "c", addr: "c:8003", heartbeat: 5, after: 3, entries: [keyUpdate(COMPACT_KEY, "2", 4, 1)] }],
      "c",
      0,
    )
    expect(liveEntries(a, "c")).toEqual({ i: "1" })
    expect(a.state.nodeView("c")?.status).toBe("active")
  })

  it("ignores a compaction cut that is not a whole number a double holds exactly, and an internal key it does not know", () => {
    const a = knowing([keyUpdate("k", "1", 1)])
    const internal = (key: string, value: string, version: number) =>
      a.state.applyDeltas(
        [
          {
            id: "c",
            addr: "c:8003",
            heartbeat: 5,
            after: version - 1,
            entries: [keyUpdate(key, value, version, 1)],
          },
        ],
        "c",
        0,
      )
    internal(COMPACT_KEY, "soon", 2)
    internal(COMPACT_KEY, "1.5", 3)
    internal(COMPACT_KEY, "9007199254740993", 4)
    // A newer Pico's own internal key is kept and means nothing here, least of all a cut.
    internal("_internal:future", "3", 5)
    expect(liveEntries(a, "c")).toEqual({ k: "1" })
    expect(a.state.nodeView("c")?.status).toBe("active")
  })

  it("keeps a departure's expiry when the node's left entry comes again, re-versioned by its compaction", () => {
    const a = knowing()
    hearLeft(a, "c")
    expect(a.state.nodeView("c")).toMatchObject({ status: "left", expiresAt: expiry })
    a.events.length = 0
    a.state.applyDeltas(
      [{ id: "c", addr: "c:8003", heartbeat: 5, after: 1, entries: [keyUpdate(LEFT_KEY, "", 2, 1)] }],
      "c",
      1000,
    )
    expect(a.state.nodeView("c")).toMatchObject({ status: "left", expiresAt: expiry })
    expect(a.events).toEqual([])
  })

  it("removes only the nodes whose expiry has passed", () => {
    const a = knowing()
    a.state.applyDigest([row("d", 0, 5)], "d", 0)
    hearLeft(a, "d")
    expect(a.state.nodeView("d")?.expiresAt).toBe(expiry)
    a.state.expire(expiry - 1)
    expect(ids(a)).toEqual(["a", "c", "d"])
    a.state.expire(expiry)
    expect(ids(a)).toEqual(["a", "c"])
    a.state.expire(100 * expiry)
    expect(ids(a)).toEqual(["a", "c"])
  })

  it("gives a process started at an epoch time its whole delta without walking every version since 0", () => {
    const { state } = node("a", 1_764_547_200_000)
    state.setLocal("k", "v")
    expect(state.localDelta(0).entries.map(([key]) => key)).toEqual([COMPACT_KEY, "k"])
  })

  it("suspects a node only once its φ is above the threshold, not at it", () => {
    // The same arrivals as the state's detector will see: c added at 0, heard again at 1000.
    const scratch = new FailureDetector(1000)
    scratch.heartbeat("c", 0)
    scratch.heartbeat("c", 1000)
    const threshold = scratch.phi("c", 5000)
    const detector = new FailureDetector(1000)
    const state = new ClusterState({
      selfId: "a",
      selfAddr: "a:8003",
      nodeExpiry: expiry,
      compactionThreshold: 100,
      phiThreshold: threshold,
      detector,
      emit: () => {},
    })
    state.applyDigest([row("c", 0, 5)], "c", 0)
    state.heardFrom({ id: "c", addr: "c:8003", heartbeat: 6 }, 1000)
    expect(detector.phi("c", 5000)).toBe(threshold)
    state.checkLiveness(5000)
    expect(state.nodeView("c")?.status).toBe("active")
    state.checkLiveness(5001)
    expect(state.nodeView("c")?.status).toBe("unreachable")
  })

  it("probes a node with its certificate only while it is removed without having left", () => {
    const a = knowing()
    hearLeft(a, "c")
    const own = a.state.digest()[0]
    expect(a.state.probeDigest({ id: "nobody", addr: "nobody:8003" })).toEqual([own])
    a.state.expire(expiry)
    expect(a.state.nodeView("c")).toBeUndefined()
    expect(a.state.probeDigest({ id: "c", addr: "c:8003" })).toEqual([own])
  })
})
