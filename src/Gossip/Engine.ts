/**
 * The gossip protocol over a `Transport`: periodic anti-entropy rounds, eager pushes of local changes, joins and
 * leaves, failure detection and expiry. One engine is one node. Its state lives in one `ClusterState`, mutated only
 * by this module's effects through synchronous calls, so no fiber ever sees it half-updated.
 */
import {
  Clock,
  Deferred,
  Duration,
  Effect,
  Either,
  FiberSet,
  Option,
  Queue,
  Random,
  type Scope,
} from "effect"
import * as ThrottledLog from "../internal/ThrottledLog.js"
import { FailureDetector } from "./FailureDetector.js"
import * as Message from "./Message.js"
import { ClusterState, type GossipEntry, type GossipEvent, type GossipNode, type Peer } from "./State.js"
import { type Transport, TransportError } from "./Transport.js"

export interface Options {
  /** `--cluster.node-id`; by default a fresh id per process start. */
  readonly nodeId: string
  /** `--gossip.interval`: time between rounds, each delayed by a further random 0–10 %. Default 500 ms. */
  readonly interval?: Duration.DurationInput
  /** The largest datagram, encoded; larger digests are split, larger deltas go over a stream. Default 1400. */
  readonly maxPacketSize?: number
  /**
   * Suspicion level φ above which a node is unreachable: φ ≈ 0.434 × silence / mean interval between heartbeats
   * seen of that node, so the default 8 means about 18 mean intervals of silence. Heartbeats are seen every
   * 0.5–1 interval, so with the default interval a crashed node is unreachable after ~10 s (3 nodes) to ~15–20 s
   * (10 to 100 nodes). Lower is faster but suspects slow nodes sooner.
   */
  readonly phiThreshold?: number
  /** How long left and unreachable nodes are kept before they are removed. Default 1 minute. */
  readonly nodeExpiry?: Duration.DurationInput
  /** How many peers a local change is pushed to at once, ahead of anti-entropy. Default 3. */
  readonly pushFanout?: number
  /** Deadline of one join, leave or large-delta exchange. Default 10 s. */
  readonly requestTimeout?: Duration.DurationInput
  /** Local tombstones that trigger compaction. Default 100. */
  readonly compactionThreshold?: number
}

/** Traffic counters, cumulative since start. */
export interface Stats {
  readonly packetsIn: number
  readonly packetsOut: number
  /** Request streams answered, and sent. */
  readonly requestsIn: number
  readonly requestsOut: number
  /** Datagram and stream payload bytes. */
  readonly bytesIn: number
  readonly bytesOut: number
  /** Datagrams and stream payloads that did not decode (or were of the wrong kind): dropped. */
  readonly malformed: number
}

export interface Engine {
  /** This node's id, fresh for every process start. */
  readonly nodeId: string
  /** Upserts a local entry (nothing happens if the value is unchanged). */
  readonly setLocal: (key: string, value: string) => Effect.Effect<void>
  /** Deletes a local entry (a tombstone, so the deletion spreads). */
  readonly deleteLocal: (key: string) => Effect.Effect<void>
  /** The local node's current entries. */
  readonly localEntries: Effect.Effect<ReadonlyMap<string, string>>
  /** Every known node, self included (for the status API). */
  readonly nodes: Effect.Effect<ReadonlyArray<GossipNode>>
  /** One node's metadata and all its entries (tombstones and internal keys included), if known. */
  readonly node: (
    id: string,
  ) => Effect.Effect<Option.Option<GossipNode & { readonly entries: ReadonlyArray<GossipEntry> }>>
  /**
   * Remote-node events from now on, for as long as the scope lives; a new subscriber first receives the current
   * state replayed as NodeJoined/KeyUpdated/NodeStatusChanged events.
   */
  readonly subscribe: Effect.Effect<Queue.Dequeue<GossipEvent>, never, Scope.Scope>
  /** Joins through each address; the ids reached, and why the others failed. */
  readonly join: (
    addresses: ReadonlyArray<string>,
  ) => Effect.Effect<{ readonly joined: ReadonlyArray<string>; readonly failures: ReadonlyArray<string> }>
  /** Marks the node left and tells a few peers; how many acknowledged, out of how many live peers. */
  readonly leave: Effect.Effect<{
    readonly notified: number
    readonly peers: number
    readonly failures: ReadonlyArray<string>
  }>
  /** Traffic counters since start (for metrics). */
  readonly stats: Effect.Effect<Stats>
}

/** The largest datagram when none is configured. */
export const defaultMaxPacketSize = 1400

/** Peers told reliably of a leave; anti-entropy takes it to the rest (spec §6.7). */
const LEAVE_ACKS = 3

/** Peers asked at once to acknowledge a leave: a dead one's deadline must not hold up the others. */
const LEAVE_FANOUT = 16

export const make = (transport: Transport, options: Options): Effect.Effect<Engine, never, Scope.Scope> =>
  Effect.gen(function* () {
    const interval = Duration.toMillis(options.interval ?? "500 millis")
    const nodeExpiry = Duration.toMillis(options.nodeExpiry ?? "1 minute")
    const maxPacketSize = options.maxPacketSize ?? defaultMaxPacketSize
    const pushFanout = options.pushFanout ?? 3
    const requestTimeout = options.requestTimeout ?? "10 seconds"

    const subscribers = new Set<Queue.Queue<GossipEvent>>()
    // Two live processes with one id (--cluster.node-id given twice, say) split the node's traffic unpredictably:
    // the one outrun is told, at most once every 10 s while it lasts, where the other is.
    let rivalAddr = ""
    const warnRival = yield* ThrottledLog.make(["seen"], (counts) =>
      Effect.logWarning("another live process has this node id; peers route to it, not to this one").pipe(
        Effect.annotateLogs({
          subsystem: "gossip",
          "node-id": options.nodeId,
          "other-addr": rivalAddr,
          count: counts.seen,
        }),
      ),
    )
    const state = new ClusterState({
      selfId: options.nodeId,
      selfAddr: transport.address,
      startedAt: yield* Clock.currentTimeMillis,
      nodeExpiry,
      compactionThreshold: options.compactionThreshold ?? 100,
      phiThreshold: options.phiThreshold ?? 8,
      // Twice the interval, as the original: a new node is given time before its silence counts (spec §6.4).
      detector: new FailureDetector(2 * interval),
      emit: (event) => {
        for (const queue of subscribers) queue.unsafeOffer(event)
      },
      rival: (addr) => {
        rivalAddr = addr
        warnRival("seen")
      },
    })
    const stats = {
      packetsIn: 0,
      packetsOut: 0,
      requestsIn: 0,
      requestsOut: 0,
      bytesIn: 0,
      bytesOut: 0,
      malformed: 0,
    }
    const background = yield* FiberSet.make()

    // --- Sending ---

    const sendBytes = (address: string, bytes: Uint8Array) => {
      stats.packetsOut++
      stats.bytesOut += bytes.length
      return transport.send(address, bytes)
    }

    const sendDigest = (address: string, rows: ReadonlyArray<Message.DigestRow>) =>
      Effect.forEach(Message.digestPackets(state.sender(), rows, maxPacketSize), (bytes) =>
        sendBytes(address, bytes),
      )

    /** One reliable exchange: the answer, which must be of the expected kind. */
    const exchange = <Tag extends Message.Message["_tag"]>(
      address: string,
      message: Message.Message,
      expected: Tag,
    ) =>
      Effect.gen(function* () {
        const bytes = Message.encode(message)
        stats.requestsOut++
        stats.bytesOut += bytes.length
        const answer = yield* transport.request(address, bytes).pipe(
          Effect.timeoutFail({
            duration: requestTimeout,
            onTimeout: () => new TransportError({ reason: "timeout", address }),
          }),
        )
        stats.bytesIn += answer.length
        const decoded = Message.decode(answer).pipe(
          Either.filterOrLeft(
            (reply): reply is Extract<Message.Message, { readonly _tag: Tag }> => reply._tag === expected,
            (reply) => new Message.MalformedMessage({ message: `expected ${expected}, got ${reply._tag}` }),
          ),
        )
        if (Either.isLeft(decoded)) stats.malformed++
        return yield* decoded
      })

    /** Deltas go as one datagram when they fit, else over a stream in the background. */
    const sendDeltas = (address: string, nodes: ReadonlyArray<Message.NodeDelta>) => {
      if (nodes.length === 0) return Effect.void
      const message: Message.Message = { _tag: "Delta", from: state.sender(), nodes }
      const bytes = Message.encode(message)
      if (bytes.length <= maxPacketSize) return sendBytes(address, bytes)
      // Losing it is fine: the next round's digest asks again.
      return FiberSet.run(background, Effect.ignore(exchange(address, message, "Ack"))).pipe(Effect.asVoid)
    }

    /** A round's digest to a live peer: all of it, or its first datagrams to a node that has not spoken to us. */
    const sendRoundDigest = (peer: Peer) =>
      Effect.suspend(() => {
        const { rows, maxPackets } = state.digestFor(peer)
        const packets = Message.digestPackets(state.sender(), rows, maxPacketSize)
        return Effect.forEach(packets.slice(0, maxPackets), (bytes) => sendBytes(peer.addr, bytes))
      })

    const probe = (peers: ReadonlyArray<Peer>) =>
      Effect.forEach(peers, (peer) => Effect.suspend(() => sendDigest(peer.addr, state.probeDigest(peer))))

    const pick = <A>(items: ReadonlyArray<A>) =>
      items.length === 0
        ? Effect.succeed(Option.none<A>())
        : Effect.map(Random.nextIntBetween(0, items.length), (i) => Option.some(items[i] as A))

    /** Pushes the local entries newer than `before` to a few live peers, so a change does not wait for rounds. */
    const push = (before: number) =>
      Effect.gen(function* () {
        const live = state.livePeers()
        // Alone, there is no one to tell: building the delta (a pass over every local entry) would be wasted on
        // each of thousands of agents connecting.
        if (live.length === 0) return
        const delta = [state.localDelta(before)]
        const peers = yield* Random.shuffle(live)
        yield* Effect.forEach(Array.from(peers).slice(0, pushFanout), (peer) => sendDeltas(peer.addr, delta))
      })

    const changeLocal = (change: () => boolean) =>
      Effect.suspend(() => {
        const before = state.localVersion
        return change() ? push(before) : Effect.void
      })

    // --- Receiving ---

    const onDigest = (digest: typeof Message.Digest.Type) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const { from } = digest
        state.heardFrom(from, now)
        const { probes, reply, refute } = state.applyDigest(digest.nodes, from.id, now)
        yield* sendDeltas(from.addr, state.deltaFor(digest.nodes, false))
        if (refute) yield* probe([from])
        else if (reply.length > 0) yield* sendDigest(from.addr, reply)
        yield* probe(probes)
      })

    const onDeltas = (delta: typeof Message.Delta.Type) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        state.heardFrom(delta.from, now)
        yield* probe(state.applyDeltas(delta.nodes, delta.from.id, now))
      })

    /** Takes in a peer's full state exchange: a joiner's, or the welcome it gets. */
    const absorb = (exchanged: typeof Message.Join.Type | typeof Message.Welcome.Type) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        probe([
          ...state.applyDeltas(exchanged.nodes, exchanged.from.id, now),
          ...state.applyDigest(exchanged.digest, exchanged.from.id, now).probes,
        ]),
      )

    const onJoin = (join: typeof Message.Join.Type) =>
      Effect.zipRight(
        absorb(join),
        Effect.sync(
          (): Message.Message => ({
            _tag: "Welcome",
            from: state.sender(),
            nodes: state.deltaFor(join.digest, true),
            digest: state.digest(),
          }),
        ),
      )

    // A message that passed the seal (or came on an unkeyed cluster) yet does not decode is a peer's bug or an
    // attack: worth a warning, at most one per interval however many arrive, naming the latest reason.
    let lastMalformed = ""
    const warnMalformed = yield* ThrottledLog.make(["malformed"], (counts) =>
      Effect.logWarning("dropped malformed gossip messages").pipe(
        Effect.annotateLogs({ subsystem: "gossip", count: counts.malformed, reason: lastMalformed }),
      ),
    )
    const malformed = (reason: string) =>
      Effect.sync(() => {
        stats.malformed++
        lastMalformed = reason.length > 200 ? `${reason.slice(0, 200)}...` : reason
        warnMalformed("malformed")
      })

    const onPacket = (bytes: Uint8Array) =>
      Effect.suspend(() => {
        stats.packetsIn++
        stats.bytesIn += bytes.length
        const decoded = Message.decode(bytes)
        if (Either.isLeft(decoded)) return malformed(decoded.left.message)
        const message = decoded.right
        switch (message._tag) {
          case "Digest":
            return onDigest(message)
          case "Delta":
            return onDeltas(message)
          default:
            return malformed(`${message._tag} is not a datagram`)
        }
      })

    const onRequest = (bytes: Uint8Array): Effect.Effect<Option.Option<Uint8Array>> =>
      Effect.suspend(() => {
        stats.requestsIn++
        stats.bytesIn += bytes.length
        const decoded = Message.decode(bytes)
        if (Either.isLeft(decoded)) return Effect.as(malformed(decoded.left.message), Option.none())
        const message = decoded.right
        const answer = (reply: Message.Message) => {
          const encoded = Message.encode(reply)
          stats.bytesOut += encoded.length
          return Option.some(encoded)
        }
        switch (message._tag) {
          case "Join":
            return Effect.map(onJoin(message), answer)
          case "Delta":
            return Effect.as(onDeltas(message), answer({ _tag: "Ack", from: state.sender() }))
          default:
            return Effect.as(malformed(`${message._tag} is not a request`), Option.none())
        }
      })

    // --- Rounds ---

    /** One round (spec §6.3): heartbeat, liveness, expiry, then a digest to a live peer and to a silent one. */
    const round = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      state.tick()
      state.checkLiveness(now)
      state.expire(now)
      const peer = yield* pick(state.livePeers())
      if (Option.isSome(peer)) yield* sendRoundDigest(peer.value)
      const silent = yield* pick(state.probeTargets())
      yield* probe(Option.toArray(silent))
    })

    /** Sleeps a random number of intervals between `min` and `max`. */
    const sleepIntervals = (min: number, max: number) =>
      Effect.flatMap(Random.next, (r) => Effect.sleep(Duration.millis(interval * (min + (max - min) * r))))

    // --- Join and leave ---

    const joinOne = (address: string) =>
      Effect.suspend(() =>
        exchange(
          address,
          { _tag: "Join", from: state.sender(), nodes: [state.localDelta(0)], digest: state.digest() },
          "Welcome",
        ),
      ).pipe(
        Effect.tap(absorb),
        Effect.map((welcome) => welcome.from.id),
      )

    const join: Engine["join"] = (addresses) =>
      Effect.forEach(
        addresses,
        (address) =>
          // Joining oneself succeeds at once (spec §6.6).
          address === transport.address
            ? Effect.succeed(Either.right(options.nodeId))
            : Effect.either(joinOne(address)),
        { concurrency: "unbounded" },
      ).pipe(
        Effect.map((results) => ({
          joined: results.filter(Either.isRight).map((result) => result.right),
          failures: results.filter(Either.isLeft).map((result) => result.left.message),
        })),
        Effect.withSpan("Gossip.join"),
      )

    const leave: Engine["leave"] = Effect.gen(function* () {
      state.leave()
      const live = state.livePeers()
      // Those that have spoken to us first (made-up or stale ones would only time out), each lot in random order.
      const spoken = yield* Random.shuffle(live.filter((peer) => state.hasSpoken(peer)))
      const others = yield* Random.shuffle(live.filter((peer) => !state.hasSpoken(peer)))
      const asked = [...spoken, ...others].slice(0, LEAVE_FANOUT)
      const failures: Array<string> = []
      let notified = 0
      const enough = yield* Deferred.make<void>()
      // Every local entry, the left one last: built once, however many are asked.
      const message: Message.Message = { _tag: "Delta", from: state.sender(), nodes: [state.localDelta(0)] }
      const ask = (peer: Peer) =>
        Effect.either(exchange(peer.addr, message, "Ack")).pipe(
          Effect.flatMap((answer) => {
            if (Either.isLeft(answer)) return Effect.sync(() => void failures.push(answer.left.message))
            notified++
            return notified >= LEAVE_ACKS ? Deferred.succeed(enough, undefined) : Effect.void
          }),
        )
      // Done at the third acknowledgement, or once every peer asked has answered or failed.
      yield* Effect.raceFirst(
        Effect.forEach(asked, ask, { concurrency: "unbounded" }),
        Deferred.await(enough),
      )
      return { notified, peers: live.length, failures }
    }).pipe(Effect.withSpan("Gossip.leave"))

    // --- Wiring ---

    const subscribe = Effect.acquireRelease(
      Effect.flatMap(Queue.unbounded<GossipEvent>(), (queue) =>
        // Replay and registration happen in one synchronous step, so no event is missed or seen twice.
        Effect.sync(() => {
          for (const event of state.replay()) queue.unsafeOffer(event)
          subscribers.add(queue)
          return queue
        }),
      ),
      (queue) =>
        Effect.zipRight(
          Effect.sync(() => subscribers.delete(queue)),
          Queue.shutdown(queue),
        ),
    )

    yield* transport.serve({ packet: onPacket, request: onRequest })

    // Membership changes are worth an operator's attention; key changes are too frequent to log. `member`, not
    // `node`: a node's log lines may already name the node writing them (pico dev cluster does).
    const events = yield* subscribe
    yield* Queue.take(events).pipe(
      Effect.flatMap((event) =>
        event._tag === "KeyUpdated" || event._tag === "KeyDeleted"
          ? Effect.void
          : Effect.logInfo("cluster membership changed").pipe(
              Effect.annotateLogs({
                event: event._tag,
                member: event.nodeId,
                ...(event._tag === "NodeStatusChanged" ? { status: event.status } : {}),
              }),
            ),
      ),
      Effect.forever,
      Effect.annotateLogs({ subsystem: "gossip" }),
      Effect.forkScoped,
    )

    // A random first delay spreads the rounds of nodes started together; then 0–10 % jitter (spec §6.3).
    yield* sleepIntervals(0, 1).pipe(
      Effect.zipRight(Effect.forever(Effect.zipRight(round, sleepIntervals(1, 1.1)))),
      Effect.annotateLogs({ subsystem: "gossip" }),
      Effect.forkScoped,
    )

    return {
      nodeId: options.nodeId,
      setLocal: (key, value) => changeLocal(() => state.setLocal(key, value)),
      deleteLocal: (key) => changeLocal(() => state.deleteLocal(key)),
      localEntries: Effect.sync(() => state.localEntries()),
      nodes: Effect.sync(() => state.nodeViews()),
      node: (id) => Effect.sync(() => Option.fromNullable(state.nodeView(id))),
      subscribe,
      join,
      leave,
      stats: Effect.sync(() => ({ ...stats })),
    } satisfies Engine
  })
