import { lookup } from "node:dns/promises"
import { isIP } from "node:net"
import { type Duration, Effect, Either, Ref, Schedule } from "effect"
import { formatHostPort, parseHostPort } from "../Domain/Address.js"
import { GossipError } from "./GossipError.js"

/** "ENOTFOUND pico.internal": the resolver's error code and the name it could not resolve. */
const lookupFailure = (name: string, error: unknown): string => {
  const code = (error as { code?: unknown }).code
  return `${typeof code === "string" ? code : String(error)} ${name}`
}

export interface ResolvedJoinAddresses {
  readonly addresses: ReadonlyArray<string>
  /** One "ENOTFOUND <name>" per name that did not resolve. */
  readonly failures: ReadonlyArray<string>
}

/**
 * Expands `--cluster.join` entries into gossip addresses: a port defaults to the local gossip port, and a DNS
 * name becomes every address it resolves to (a Kubernetes headless service lists all the pods). A name that does
 * not resolve yet is skipped, since the caller retries.
 */
export const resolveJoinAddresses = (
  entries: ReadonlyArray<string>,
  defaultPort: number,
): Effect.Effect<ResolvedJoinAddresses> =>
  Effect.forEach(entries, (entry) => {
    const parsed = parseHostPort(entry) ?? { host: entry, port: defaultPort }
    if (isIP(parsed.host) !== 0) return Effect.succeed(Either.right([formatHostPort(parsed)]))
    return Effect.tryPromise({
      try: () => lookup(parsed.host, { all: true }),
      catch: (error) => lookupFailure(parsed.host, error),
    }).pipe(
      Effect.map((found) => found.map(({ address }) => formatHostPort({ host: address, port: parsed.port }))),
      Effect.tapError((error) =>
        Effect.logWarning("join address did not resolve").pipe(
          Effect.annotateLogs({ address: entry, error }),
        ),
      ),
      Effect.either,
    )
  }).pipe(
    Effect.map((results) => ({
      addresses: [...new Set(results.flatMap((result) => Either.getOrElse(result, () => [])))],
      failures: results.flatMap((result) => (Either.isLeft(result) ? [result.left] : [])),
    })),
  )

export interface JoinOptions {
  readonly entries: ReadonlyArray<string>
  readonly defaultPort: number
  /** This node's own gossip addresses: a name that resolves to only ourselves means we are the first node. */
  readonly self: ReadonlySet<string>
  readonly timeout: Duration.DurationInput
}

export type JoinOutcome =
  | { readonly _tag: "Alone" }
  | { readonly _tag: "Joined"; readonly nodeIds: ReadonlyArray<string> }
  | { readonly _tag: "Failed"; readonly reason: string }

/**
 * Joins the cluster at startup, retrying with backoff (1 s doubling to 10 s) until `timeout`: on Kubernetes the
 * first pods start before their peers' DNS records exist.
 */
export const joinOnStartup = (
  join: (addresses: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<string>, GossipError>,
  options: JoinOptions,
): Effect.Effect<JoinOutcome> => {
  if (options.entries.length === 0) return Effect.succeed({ _tag: "Alone" })
  const attempt = resolveJoinAddresses(options.entries, options.defaultPort).pipe(
    Effect.flatMap(({ addresses, failures }) => {
      const others = addresses.filter((address) => !options.self.has(address))
      if (addresses.length > 0 && others.length === 0) return Effect.succeed<JoinOutcome>({ _tag: "Alone" })
      if (others.length === 0)
        return new GossipError({
          reason: "join failed",
          message: `no join address resolved: ${failures.join(", ")}`,
        })
      return Effect.map(join(others), (nodeIds): JoinOutcome => ({ _tag: "Joined", nodeIds }))
    }),
  )
  return Effect.gen(function* () {
    // What the last attempt said, for the outcome when the time is up.
    const lastFailure = yield* Ref.make("no join address resolved")
    return yield* attempt.pipe(
      Effect.tapError((error) =>
        Ref.set(lastFailure, error.message).pipe(
          Effect.zipRight(
            Effect.logWarning("join failed; retrying").pipe(Effect.annotateLogs("reason", error.message)),
          ),
        ),
      ),
      Effect.retry(Schedule.exponential("1 second").pipe(Schedule.union(Schedule.spaced("10 seconds")))),
      Effect.timeout(options.timeout),
      Effect.catchAll(() =>
        Effect.map(Ref.get(lastFailure), (reason): JoinOutcome => ({ _tag: "Failed", reason })),
      ),
    )
  })
}
