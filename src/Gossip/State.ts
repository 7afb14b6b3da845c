/**
 * The cluster as one node sees it: every known node's versioned entries, its liveness, and the death certificates
 * of removed nodes. Pure and synchronous (time is passed in) so the protocol rules can be tested without a network;
 * `Engine` owns the only instance of a node and mutates it from effects.
 */
import type { FailureDetector } from "./FailureDetector.js"
import { type DigestRow, EntryFlag, type EntryRow, type NodeDelta, RowState, type Sender } from "./Message.js"

export type NodeStatus = "active" | "unreachable" | "left"

export interface GossipNode {
  readonly id: string
  /** The gossip address (host:port). */
  readonly addr: string
  /** The highest version of the node's entries known here. */
  readonly version: number
  readonly status: NodeStatus
  /** Epoch ms at which the node will be removed, while it is left or unreachable. */
  readonly expiresAt: number | undefined
}

export interface GossipEntry {
  readonly key: string
  readonly value: string
  readonly version: number
  readonly internal: boolean
  /** A tombstone: the key was deleted at `version`. */
  readonly deleted: boolean
}

/** A change to a remote node, in the order it was learned. */
export type GossipEvent =
  | { readonly _tag: "NodeJoined"; readonly nodeId: string }
  | { readonly _tag: "KeyUpdated"; readonly nodeId: string; readonly key: string; readonly value: string }
  | { readonly _tag: "KeyDeleted"; readonly nodeId: string; readonly key: string }
  | { readonly _tag: "NodeStatusChanged"; readonly nodeId: string; readonly status: NodeStatus }
  | { readonly _tag: "NodeRemoved"; readonly nodeId: string }

/** Written by a node that leaves gracefully (spec §6.1). */
export const LEFT_KEY = "_internal:left"
/** Written by compaction: every entry of the node up to this version (the value) is gone (spec §6.5). */
export const COMPACT_KEY = "_internal:compact"

/**
 * Death certificates are gossiped and kept for this many node-expiry periods: long after every survivor has removed
 * the node, and long enough for the sides of a partition to find back (see `probeTargets`).
 */
const CERTIFICATE_LIFETIME = 10

/**
 * How many rounds our view of a node's heartbeat may lag its own (we learned it left from a third party, say). A
 * new process with its id starts about a millisecond per millisecond of the old one's life ahead (`startedAt`),
 * far past this; a late datagram of the old process, sent before it left, is not.
 */
const STALE_HEARTBEATS = 100

/**
 * The highest heartbeat or version a node takes up from a peer's view of it (see `aboutSelf`): 2^52. Far below
 * 2^53 (what a double counts exactly), and far above what any process reaches (a millisecond clock and counts):
 * news of a node at or past it is forged, on a cluster without a key, and ignored (`implausible`), so that it
 * cannot put a node out of reach of its own heartbeat for good.
 */
const MAX_CAUGHT_UP = 2 ** 52

const implausible = (count: number) => count >= MAX_CAUGHT_UP

/** What a message says about a node: enough to add it, and its liveness counter. */
export interface Sighting {
  readonly id: string
  readonly addr: string
  readonly heartbeat: number
  readonly left: boolean
}

/** A node to send a digest to (see `digestFor`). */
export interface Peer {
  readonly id: string
  readonly addr: string
}

/**
 * The most datagrams of a round's digest sent to a node that has not spoken to us itself: one datagram can name
 * thousands of made-up nodes at a victim's address on a cluster without a key, and whole digests to each would
 * make the cluster flood the victim. About 170 rows of real ids: a cluster of that many nodes loses nothing.
 */
const UNHEARD_DIGEST_PACKETS = 8

interface NodeRecord {
  readonly id: string
  /**
   * Where the node gossips from. It moves only on the node's own word (see `heardFrom`): a row from anyone else
   * could point it anywhere, at a victim of a cluster without a key, say.
   */
  addr: string
  /** A message of the node's own has reached us, not only word of it from others (see `digestFor`). */
  spoke: boolean
  version: number
  /** The node's own round counter, the highest seen: when it grows, the node was alive. */
  heartbeat: number
  status: NodeStatus
  expiresAt: number | undefined
  /**
   * The highest heartbeat it was seen with as left (when we learned it left, or in a left row since): only a live
   * row well past it brings it back (`cameBack`).
   */
  leftHeartbeat?: number | undefined
  readonly entries: Map<string, GossipEntry>
}

/** A removed node: readmitted only by newer evidence from the node itself (see `observe`). */
interface DeathCertificate {
  readonly addr: string | undefined
  /** The node's heartbeat when it was removed: evidence must be newer. */
  heartbeat: number
  /** The highest heartbeat third parties have reported since: each probe is a one-off for a node really dead. */
  probed: number
  readonly left: boolean
  removedAt: number
}

export interface StateOptions {
  readonly selfId: string
  readonly selfAddr: string
  /**
   * Epoch ms when this process started (0 by default). It is where the heartbeat and the versions start, so a
   * process that reuses a node id (--cluster.node-id) starts above any the one before it reached: rounds and
   * writes come far less often than milliseconds pass. It also opens the window in which the node catches up
   * (`aboutSelf`), for when they did not.
   */
  readonly startedAt?: number | undefined
  /** Milliseconds left and unreachable nodes are kept before removal. */
  readonly nodeExpiry: number
  readonly compactionThreshold: number
  readonly phiThreshold: number
  readonly detector: FailureDetector
  /** Receives every change to a remote node, synchronously. */
  readonly emit: (event: GossipEvent) => void
  /**
   * Called, synchronously, each time a peer shows another live process with this node's id ahead of it (at the
   * address given): the peers route to that one, not to this one.
   */
  readonly rival?: ((addr: string) => void) | undefined
}

const toRow = (entry: GossipEntry): EntryRow => [
  entry.key,
  entry.value,
  entry.version,
  ((entry.internal ? EntryFlag.internal : 0) | (entry.deleted ? EntryFlag.deleted : 0)) as EntryRow[3],
]

const fromRow = ([key, value, version, flags]: EntryRow): GossipEntry => ({
  key,
  value,
  version,
  internal: (flags & EntryFlag.internal) !== 0,
  deleted: (flags & EntryFlag.deleted) !== 0,
})

const byVersion = (a: GossipEntry, b: GossipEntry) => a.version - b.version

/** A node's entries (in version order) as the wire carries them. */
const nodeDelta = (node: NodeRecord, after: number, entries: ReadonlyArray<GossipEntry>): NodeDelta => ({
  id: node.id,
  addr: node.addr,
  heartbeat: node.heartbeat,
  after,
  entries: entries.map(toRow),
})

export class ClusterState {
  private readonly nodes = new Map<string, NodeRecord>()
  private readonly removed = new Map<string, DeathCertificate>()
  private readonly self: NodeRecord

  constructor(private readonly options: StateOptions) {
    const startedAt = options.startedAt ?? 0
    this.self = {
      id: options.selfId,
      addr: options.selfAddr,
      spoke: true,
      version: startedAt,
      heartbeat: startedAt,
      status: "active",
      expiresAt: undefined,
      entries: new Map(),
    }
    this.nodes.set(this.self.id, this.self)
    // Versions, like the heartbeat, start past any a process with this id reached before (it made far fewer
    // writes than milliseconds passed), behind a compaction cut: peers drop every key of that process, those
    // this one never sets included, and take this one's, however equal the two processes' counts.
    if (startedAt > 0) this.write(COMPACT_KEY, String(startedAt), true, false)
  }

  // --- The local node (only it writes its entries) ---

  get localVersion(): number {
    return this.self.version
  }

  /** Upserts a local entry; false when the value is unchanged. */
  setLocal(key: string, value: string): boolean {
    const current = this.self.entries.get(key)
    if (current !== undefined && !current.deleted && current.value === value) return false
    this.write(key, value, false, false)
    return true
  }

  /** Replaces a local entry by a tombstone; false when there was nothing to delete. */
  deleteLocal(key: string): boolean {
    const current = this.self.entries.get(key)
    if (current === undefined || current.deleted) return false
    this.write(key, "", current.internal, true)
    if (this.localTombstones >= this.options.compactionThreshold) this.compact()
    return true
  }

  /** Marks the local node left (once); false if it already was. */
  leave(): boolean {
    if (this.self.status === "left") return false
    this.self.status = "left"
    this.write(LEFT_KEY, "", true, false)
    return true
  }

  /** Advances the local heartbeat, once per round; not near that of another live process with this id. */
  tick(): void {
    if (this.self.heartbeat + 1 < this.rivalHeartbeat - STALE_HEARTBEATS || this.rivalHeartbeat === 0)
      this.self.heartbeat++
  }

  localEntries(): ReadonlyMap<string, string> {
    const entries = new Map<string, string>()
    for (const entry of this.self.entries.values())
      if (!entry.internal && !entry.deleted) entries.set(entry.key, entry.value)
    return entries
  }

  /** Tombstones among the local entries, counted as they come and go (10,000 agents leaving must not cost n²). */
  private localTombstones = 0

  /**
   * The local entries by version (each write takes the next one): the delta pushed after a change names only the
   * last few versions, so it is read from here instead of a pass over every entry (thousands of endpoints
   * registering would cost n² in all).
   */
  private readonly localByVersion = new Map<number, GossipEntry>()

  private write(key: string, value: string, internal: boolean, deleted: boolean): void {
    const previous = this.self.entries.get(key)
    if (previous !== undefined) this.localByVersion.delete(previous.version)
    if (previous?.deleted === true) this.localTombstones--
    if (deleted) this.localTombstones++
    this.self.version++
    const entry = { key, value, version: this.self.version, internal, deleted }
    this.self.entries.set(key, entry)
    this.localByVersion.set(entry.version, entry)
  }

  /**
   * Drops the tombstones by re-versioning the live entries above everything before and announcing the cut with
   * `_internal:compact`: peers then drop all they hold up to the cut, deleted keys included (spec §6.5).
   */
  private compact(): void {
    const cut = this.self.version
    const live = [...this.self.entries.values()]
      .filter((entry) => !entry.deleted && entry.key !== COMPACT_KEY)
      .sort(byVersion)
    this.self.entries.clear()
    this.localByVersion.clear()
    this.localTombstones = 0
    for (const entry of live) this.write(entry.key, entry.value, entry.internal, false)
    this.write(COMPACT_KEY, String(cut), true, false)
  }

  /**
   * What a peer says of this node. Of processes with one id, the one with the highest heartbeat is the node to
   * its peers, and its entries must be above any they hold. So:
   * - The peer has it left or removed while it is live: a process with its id that ran before (or the other of
   *   two live processes with one id) left or died. It speaks for itself again (`reassert`).
   * - The peer has it live, not ahead of its heartbeat, but ahead of its version: entries of a process no longer
   *   heard (the one before a restart with --cluster.node-id, or the other of two live ones, gone). Its entries go
   *   above them.
   * - The peer has it live, ahead of its heartbeat, while the process is new: a process restarted with the id of
   *   one that ran before, which the peers still hold. It takes up from there, once.
   * - The same later, or again: another live process with its id, which the peers route to. It is told (`rival`),
   *   and stays behind (`tick`).
   *
   * True when the peer should hear from this node at once: it holds it left or removed, and this node's own row
   * now readmits it. Never otherwise, as the peer would answer the same again, and the two would trade packets as
   * fast as they arrive.
   */
  private aboutSelf(
    state: DigestRow[4],
    addr: string,
    version: number,
    heartbeat: number,
    now: number,
  ): boolean {
    if (this.self.status === "left") return false
    if (state !== RowState.live) return this.reassert(version, heartbeat)
    if (heartbeat <= this.self.heartbeat) {
      this.versionPast(version)
      return false
    }
    // The old process's heartbeat stopped, so the margin puts this one past every peer's view of it for good.
    // Should news of itself come ahead again, it is a live process, and two that kept passing each other would
    // never settle.
    const young = now - (this.options.startedAt ?? 0) <= this.options.nodeExpiry
    if (young && !this.caughtUp && !implausible(heartbeat)) {
      this.self.heartbeat = heartbeat + STALE_HEARTBEATS
      this.caughtUp = true
      this.versionPast(version)
      return false
    }
    if (!implausible(heartbeat)) this.rivalHeartbeat = Math.max(this.rivalHeartbeat, heartbeat)
    // Until the peer has heard from the other process itself, its row still gives this one's address.
    if (addr !== this.self.addr) this.options.rival?.(addr)
    return false
  }

  /** Caught up once with a live heartbeat of a process with this id: see `aboutSelf`. */
  private caughtUp = false
  /**
   * The highest heartbeat seen of another live process with this id, ahead of this one's (0 while none is). This
   * one's heartbeat stays well behind it (`tick`): were it to creep past, running a little faster, the id would
   * change hands for nothing. It comes back once the other is gone (`reassert`).
   */
  private rivalHeartbeat = 0

  /**
   * Peers hold this node as left or removed, yet it is live. Its heartbeat passes theirs by more than a stale view
   * may lag (a node that left or was removed comes back only on its own, clearly newer, word), and its entries are
   * re-versioned above the ones they hold, so they take this process's entries in place of the other's. True when
   * its heartbeat is now past theirs (always, but for a forged row near the counters' limit).
   */
  private reassert(version: number, heartbeat: number): boolean {
    const past = heartbeat + STALE_HEARTBEATS + 1
    if (past > this.self.heartbeat && !implausible(past)) this.self.heartbeat = past
    this.versionPast(version)
    this.rivalHeartbeat = 0
    return this.self.heartbeat >= past
  }

  /**
   * Re-versions the entries above `version` behind a compaction cut, so peers drop every entry of the other
   * process, keys this one does not have included (spec §6.5), and take this one's. Far below 2^53 (what a double
   * counts exactly), so a forged row on a cluster without a key cannot push the counters to where they stop.
   */
  private versionPast(version: number): void {
    if (version <= this.self.version || implausible(version)) return
    this.self.version = version
    this.compact()
  }

  // --- Outgoing messages ---

  sender(): Sender {
    return { id: this.self.id, addr: this.self.addr, heartbeat: this.self.heartbeat }
  }

  /**
   * A row per known node (self included), then the death certificates of nodes that did not leave: those spread so
   * that every survivor removes the node, and a joiner never adopts it from a peer that has not removed it yet.
   */
  digest(): Array<DigestRow> {
    const rows: Array<DigestRow> = []
    for (const node of this.nodes.values()) rows.push(this.row(node))
    for (const [id, certificate] of this.removed)
      if (!certificate.left) rows.push(this.certificateRow(id, certificate, RowState.removed))
    return rows
  }

  /**
   * A death certificate as a row. Its version slot carries its age in milliseconds (nothing else reads it), so a
   * node that learns it takes its removal time too: every node forgets it at about the same time, and none learns
   * it back from another that still holds it (which, with a fresh age each time, would keep it forever).
   */
  private certificateRow(id: string, certificate: DeathCertificate, state: DigestRow[4]): DigestRow {
    const age = Math.max(0, Math.floor(this.lastNow - certificate.removedAt))
    return [id, certificate.addr ?? "", age, certificate.heartbeat, state]
  }

  /** The latest time this state was given (every call that takes one): what certificate ages are measured against. */
  private lastNow = 0

  private row(node: NodeRecord): DigestRow {
    return [
      node.id,
      node.addr,
      node.version,
      node.heartbeat,
      node.status === "left" ? RowState.left : RowState.live,
    ]
  }

  /**
   * What a peer with this digest lacks: for each node it lists, the entries newer than its version. With
   * `includeUnknown` (a joiner's complete digest), also every node it does not list at all, except departed ones.
   */
  deltaFor(digest: ReadonlyArray<DigestRow>, includeUnknown: boolean): Array<NodeDelta> {
    const theirs = new Map<string, number>()
    for (const [id, , version, , state] of digest) if (state !== RowState.removed) theirs.set(id, version)
    const deltas: Array<NodeDelta> = []
    for (const node of this.nodes.values()) {
      const version = theirs.get(node.id)
      if (version === undefined) {
        if (includeUnknown && node.status !== "left") deltas.push(this.delta(node, 0))
      } else if (node.version > version) deltas.push(this.delta(node, version))
    }
    return deltas
  }

  /** The local node's entries newer than `after`. */
  localDelta(after: number): NodeDelta {
    const { self } = this
    // Walking the versions since `after` costs one lookup each; past the number of entries, a scan is cheaper.
    if (self.version - after >= self.entries.size) return this.delta(self, after)
    const entries: Array<GossipEntry> = []
    for (let version = after + 1; version <= self.version; version++) {
      const entry = this.localByVersion.get(version)
      if (entry !== undefined) entries.push(entry)
    }
    return nodeDelta(self, after, entries)
  }

  private delta(node: NodeRecord, after: number): NodeDelta {
    const entries = [...node.entries.values()].filter((entry) => entry.version > after).sort(byVersion)
    return nodeDelta(node, after, entries)
  }

  // --- Incoming messages ---

  /** The sender of any message is alive; only learning about unknown nodes needs a row or a delta. */
  heardFrom(sender: Sender, now: number): void {
    const node = this.nodes.get(sender.id)
    if (node === undefined || node === this.self || implausible(sender.heartbeat)) return
    // A node restarted elsewhere with its id (--cluster.node-id) is reached where it now speaks from.
    if (sender.heartbeat > node.heartbeat) node.addr = sender.addr
    // Spoken from where we would send it digests: a message from an address the node has left proves nothing.
    if (sender.addr === node.addr) node.spoke = true
    this.heard(node, sender.heartbeat, now)
  }

  /**
   * Learns the rows of a peer's digest. Returns the nodes to probe (see `observe`); `reply`, our rows for the nodes
   * the peer is ahead on (asking it for the difference) or behind on in heartbeat (news of their liveness), and
   * our certificate of the sender when its own row does not readmit it; and `refute` when the peer has us left or
   * removed: we are alive, and our full digest (our own row) is the evidence that readmits us.
   */
  applyDigest(
    rows: ReadonlyArray<DigestRow>,
    senderId: string,
    now: number,
  ): { readonly probes: Array<Peer>; readonly reply: Array<DigestRow>; readonly refute: boolean } {
    this.lastNow = now
    const probes: Array<Peer> = []
    const reply: Array<DigestRow> = []
    let refute = false
    for (const [id, addr, version, heartbeat, state] of rows) {
      if (id === this.self.id) {
        // Our own row is the evidence that readmits us: at once, not at our next round.
        if (this.aboutSelf(state, addr, state === RowState.removed ? 0 : version, heartbeat, now))
          refute = true
        continue
      }
      if (state === RowState.live) this.cameBack(id, heartbeat)
      else if (state === RowState.left) this.seenLeft(id, heartbeat)
      if (state === RowState.removed) {
        this.learnDeath(id, addr, heartbeat, version, now)
        continue
      }
      const probe = this.observe({ id, addr, heartbeat, left: state === RowState.left }, senderId, now)
      if (probe !== undefined) probes.push(probe)
      const node = this.nodes.get(id)
      if (node !== undefined && node !== this.self && (node.version < version || node.heartbeat > heartbeat))
        reply.push(this.row(node))
      else if (node === undefined && id === senderId) {
        // Its own row did not readmit it: a process with its id whose heartbeat is behind the one we removed (the
        // other of two live processes with one id, say). Our certificate tells it to speak up (`reassert`).
        const certificate = this.removed.get(id)
        if (certificate !== undefined)
          reply.push(
            this.certificateRow(id, certificate, certificate.left ? RowState.left : RowState.removed),
          )
      }
    }
    return { probes, reply, refute }
  }

  /** Applies deltas; returns the nodes to probe. */
  applyDeltas(deltas: ReadonlyArray<NodeDelta>, senderId: string, now: number): Array<Peer> {
    this.lastNow = now
    const probes: Array<Peer> = []
    for (const delta of deltas) {
      const left = delta.entries.some(([key]) => key === LEFT_KEY)
      if (delta.id === this.self.id) {
        const state = left ? RowState.left : RowState.live
        this.aboutSelf(state, delta.addr, delta.entries.at(-1)?.[2] ?? 0, delta.heartbeat, now)
        continue
      }
      const probe = this.observe(
        { id: delta.id, addr: delta.addr, heartbeat: delta.heartbeat, left },
        senderId,
        now,
      )
      if (probe !== undefined) probes.push(probe)
      const node = this.nodes.get(delta.id)
      if (node === undefined || node === this.self || node.version < delta.after) continue
      for (const row of delta.entries) {
        const entry = fromRow(row)
        if (entry.version <= node.version || implausible(entry.version)) continue
        node.version = entry.version
        this.applyEntry(node, entry, now)
      }
    }
    return probes
  }

  /**
   * Takes note of a node mentioned by `senderId`, adding it if new. Returns an address to probe, when a removed node
   * is said by a third party to have been alive after we removed it.
   *
   * No ghosts: a removed node comes back only on evidence from the node itself (it is the sender) with a heartbeat
   * newer than any we had. A dead process sends nothing, so stale digests and deltas of nodes that have not removed
   * it yet cannot resurrect it. A live node that was wrongly removed (a partition longer than the expiry) still
   * comes back, as soon as it talks to us: we probe it when we hear of it, and it probes us while it holds our
   * certificate.
   */
  private observe(sighting: Sighting, senderId: string, now: number): Peer | undefined {
    if (sighting.id === this.self.id || implausible(sighting.heartbeat)) return undefined
    const node = this.nodes.get(sighting.id)
    if (node !== undefined) {
      this.heard(node, sighting.heartbeat, now)
      return undefined
    }
    // A departed node is never rediscovered (spec §6.3).
    if (sighting.left) return undefined
    const certificate = this.removed.get(sighting.id)
    if (certificate === undefined) {
      this.add(sighting, sighting.id === senderId, now)
      return undefined
    }
    if (certificate.left || sighting.heartbeat <= certificate.heartbeat) return undefined
    if (sighting.id === senderId) {
      this.removed.delete(sighting.id)
      this.add(sighting, true, now)
      return undefined
    }
    if (sighting.heartbeat <= certificate.probed) return undefined
    certificate.probed = sighting.heartbeat
    return { id: sighting.id, addr: sighting.addr }
  }

  /**
   * A peer removed the node `age` ms ago: follow unless we have heard from it since the peer last did. A
   * certificate near the end of its lifetime is not taken (see `certificateRow`).
   */
  private learnDeath(id: string, addr: string, heartbeat: number, age: number, now: number): void {
    // Not in its last node-expiry period either: a node that has just forgotten it must not learn it back from
    // one that learned it a little later, and so on (the dead node's stale views are long gone by then).
    if (age >= (CERTIFICATE_LIFETIME - 1) * this.options.nodeExpiry || implausible(heartbeat)) return
    const node = this.nodes.get(id)
    if (node !== undefined) {
      if (node.heartbeat <= heartbeat) this.remove(node, now - age)
      return
    }
    const certificate = this.removed.get(id)
    if (certificate === undefined)
      this.removed.set(id, {
        addr: addr === "" ? undefined : addr,
        heartbeat,
        probed: heartbeat,
        left: false,
        removedAt: now - age,
      })
    else {
      certificate.removedAt = Math.min(certificate.removedAt, now - age)
      if (heartbeat > certificate.heartbeat) {
        certificate.heartbeat = heartbeat
        certificate.probed = Math.max(certificate.probed, heartbeat)
      }
    }
  }

  private heard(node: NodeRecord, heartbeat: number, now: number): void {
    if (heartbeat <= node.heartbeat || implausible(heartbeat)) return
    node.heartbeat = heartbeat
    this.options.detector.heartbeat(node.id, now)
  }

  /**
   * A node that left is live again, its heartbeat well past the one it left with: a new process with its id (a
   * graceful restart with --cluster.node-id; the heartbeat starts at the process's start time), or the other of two
   * with one id. A late message of the process that left cannot do this, nor a stale view of it: its heartbeat
   * stopped at about the one it left with. So a third party's word will do, as well as the node's own, and the
   * whole cluster takes it back within a few rounds, not once it has spoken to each node.
   */
  private cameBack(id: string, heartbeat: number): void {
    const node = this.nodes.get(id)
    const past = (before: number) => heartbeat > before + STALE_HEARTBEATS
    if (node?.status === "left" && past(node.leftHeartbeat ?? Number.POSITIVE_INFINITY)) {
      node.status = "active"
      node.expiresAt = undefined
      node.leftHeartbeat = undefined
      this.options.emit({ _tag: "NodeStatusChanged", nodeId: node.id, status: "active" })
      return
    }
    const certificate = this.removed.get(id)
    // Removed since: it is then added as a new node (`observe`).
    if (certificate?.left === true && past(certificate.heartbeat)) this.removed.delete(id)
  }

  /**
   * A row has the node left at `heartbeat`: the process that left was still running then (draining, say), so a live
   * row of it that is not well past that is a stale view from before it left, not a new process.
   */
  private seenLeft(id: string, heartbeat: number): void {
    const node = this.nodes.get(id)
    if (node?.leftHeartbeat !== undefined && heartbeat > node.leftHeartbeat && !implausible(heartbeat))
      node.leftHeartbeat = heartbeat
  }

  private add(sighting: Sighting, spoke: boolean, now: number): void {
    this.nodes.set(sighting.id, {
      id: sighting.id,
      addr: sighting.addr,
      spoke,
      version: 0,
      heartbeat: sighting.heartbeat,
      status: "active",
      expiresAt: undefined,
      entries: new Map(),
    })
    this.options.detector.heartbeat(sighting.id, now)
    this.options.emit({ _tag: "NodeJoined", nodeId: sighting.id })
  }

  private applyEntry(node: NodeRecord, entry: GossipEntry, now: number): void {
    const previous = node.entries.get(entry.key)
    node.entries.set(entry.key, entry)
    const { emit } = this.options
    if (entry.internal) {
      if (entry.key === LEFT_KEY && node.status !== "left") {
        node.status = "left"
        node.leftHeartbeat = node.heartbeat
        node.expiresAt = now + this.options.nodeExpiry
        emit({ _tag: "NodeStatusChanged", nodeId: node.id, status: "left" })
      } else if (entry.key === COMPACT_KEY) this.applyCompaction(node, Number(entry.value))
    } else if (entry.deleted) {
      if (previous !== undefined && !previous.deleted)
        emit({ _tag: "KeyDeleted", nodeId: node.id, key: entry.key })
    } else if (previous === undefined || previous.deleted || previous.value !== entry.value)
      emit({ _tag: "KeyUpdated", nodeId: node.id, key: entry.key, value: entry.value })
  }

  private applyCompaction(node: NodeRecord, cut: number): void {
    if (!Number.isSafeInteger(cut)) return
    for (const entry of [...node.entries.values()]) {
      if (entry.version > cut) continue
      node.entries.delete(entry.key)
      if (!entry.deleted && !entry.internal)
        this.options.emit({ _tag: "KeyDeleted", nodeId: node.id, key: entry.key })
    }
  }

  // --- Time ---

  /** Marks nodes unreachable when their suspicion crosses the threshold, and active again when it falls back. */
  checkLiveness(now: number): void {
    this.lastNow = now
    for (const node of this.nodes.values()) {
      if (node === this.self || node.status === "left") continue
      const suspected = this.options.detector.phi(node.id, now) > this.options.phiThreshold
      if (suspected === (node.status === "unreachable")) continue
      node.status = suspected ? "unreachable" : "active"
      node.expiresAt = suspected ? now + this.options.nodeExpiry : undefined
      this.options.emit({ _tag: "NodeStatusChanged", nodeId: node.id, status: node.status })
    }
  }

  /** Removes the nodes whose expiry has passed, and forgets old death certificates. */
  expire(now: number): void {
    this.lastNow = now
    for (const node of this.nodes.values())
      if (node.expiresAt !== undefined && node.expiresAt <= now) this.remove(node, now)
    for (const [id, certificate] of this.removed)
      if (certificate.removedAt + CERTIFICATE_LIFETIME * this.options.nodeExpiry <= now)
        this.removed.delete(id)
  }

  private remove(node: NodeRecord, now: number): void {
    this.nodes.delete(node.id)
    this.options.detector.remove(node.id)
    this.removed.set(node.id, {
      addr: node.addr,
      heartbeat: node.heartbeat,
      probed: node.heartbeat,
      left: node.status === "left",
      removedAt: now,
    })
    this.options.emit({ _tag: "NodeRemoved", nodeId: node.id })
  }

  // --- Views ---

  /** The remote nodes believed alive. */
  livePeers(): Array<Peer> {
    const peers: Array<Peer> = []
    for (const node of this.nodes.values())
      if (node !== this.self && node.status === "active") peers.push({ id: node.id, addr: node.addr })
    return peers
  }

  /**
   * Nodes worth a digest although nobody hears from them: unreachable nodes (two nodes that wrongly suspect each
   * other still talk, spec §6.3), and removed ones that did not leave: after a partition longer than the expiry,
   * each side has removed the other, and such a digest (which carries the target's certificate) is how they meet
   * again. A dead node simply does not answer. One is probed a round, with two rows (`probeDigest`): whatever
   * addresses others made up, they cost each a small datagram a round from a node.
   */
  probeTargets(): Array<Peer> {
    const targets: Array<Peer> = []
    for (const node of this.nodes.values())
      if (node.status === "unreachable") targets.push({ id: node.id, addr: node.addr })
    for (const [id, certificate] of this.removed)
      if (!certificate.left && certificate.addr !== undefined) targets.push({ id, addr: certificate.addr })
    return targets
  }

  /**
   * The digest for `peer` in a round, and how many datagrams of it to send. A node that has spoken to us from its
   * address gets all of it. Any other gets `UNHEARD_DIGEST_PACKETS` at most, our row and what we hold of it first.
   */
  digestFor(peer: Peer): { readonly rows: Array<DigestRow>; readonly maxPackets: number } {
    if (this.hasSpoken(peer)) return { rows: this.digest(), maxPackets: Number.POSITIVE_INFINITY }
    const rows = this.probeDigest(peer)
    for (const row of this.digest()) if (row[0] !== this.self.id && row[0] !== peer.id) rows.push(row)
    return { rows, maxPackets: UNHEARD_DIGEST_PACKETS }
  }

  /** Whether a message of the peer's own has reached us from the address we know it at. */
  hasSpoken(peer: Peer): boolean {
    const node = this.nodes.get(peer.id)
    return node?.spoke === true && node.addr === peer.addr
  }

  /**
   * What a node that does not gossip with us is sent (a silent or removed node, or one that should refute what
   * we hold of it): our row and what we hold of it, all it needs to speak up. Probes go out each round for as long
   * as a node is silent or its certificate lasts (about 11 minutes), to whatever address claimed it.
   */
  probeDigest(peer: Peer): Array<DigestRow> {
    const rows = [this.row(this.self)]
    const node = this.nodes.get(peer.id)
    const certificate = this.removed.get(peer.id)
    if (node !== undefined) rows.push(this.row(node))
    else if (certificate !== undefined && !certificate.left)
      rows.push(this.certificateRow(peer.id, certificate, RowState.removed))
    return rows
  }

  nodeViews(): Array<GossipNode> {
    return [...this.nodes.values()].map((node) => this.view(node))
  }

  nodeView(id: string): (GossipNode & { readonly entries: ReadonlyArray<GossipEntry> }) | undefined {
    const node = this.nodes.get(id)
    return node === undefined
      ? undefined
      : { ...this.view(node), entries: [...node.entries.values()].sort(byVersion) }
  }

  private view(node: NodeRecord): GossipNode {
    return {
      id: node.id,
      addr: node.addr,
      version: node.version,
      status: node.status,
      expiresAt: node.expiresAt,
    }
  }

  /** The current remote state as the events that would have built it. */
  replay(): Array<GossipEvent> {
    const events: Array<GossipEvent> = []
    for (const node of this.nodes.values()) {
      if (node === this.self) continue
      events.push({ _tag: "NodeJoined", nodeId: node.id })
      for (const entry of [...node.entries.values()].sort(byVersion))
        if (!entry.internal && !entry.deleted)
          events.push({ _tag: "KeyUpdated", nodeId: node.id, key: entry.key, value: entry.value })
      if (node.status !== "active")
        events.push({ _tag: "NodeStatusChanged", nodeId: node.id, status: node.status })
    }
    return events
  }
}
