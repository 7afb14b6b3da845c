import { lookup } from "node:dns/promises"
import { isIP } from "node:net"
import { type Duration, Effect, Schedule } from "effect"
import { formatHostPort, parseHostPort } from "../Domain/Address.js"

/**
 * Expands `--cluster.join` entries into gossip addresses: a port defaults to the local gossip port, and a DNS
 * name becomes every address it resolves to (a Kubernetes headless service lists all the pods). A name that does
 * not resolve yet is skipped, since the caller retries.
 */
export const resolveJoinAddresses = (
  entries: ReadonlyArray<string>,
  defaultPort: number,
): Effect.Effect<ReadonlyArray<string>> =>
  Effect.forEach(entries, (entry) => {
    const parsed = parseHostPort(entry) ?? { host: entry, port: defaultPort }
    if (isIP(parsed.host) !== 0) return Effect.succeed([formatHostPort(parsed)])
    return Effect.tryPromise(() => lookup(parsed.host, { all: true })).pipe(
      Effect.map((found) => found.map(({ address }) => formatHostPort({ host: address, port: parsed.port }))),
      Effect.catchAll((error) =>
        Effect.logWarning("join address did not resolve").pipe(
          Effect.annotateLogs({ address: entry, error: String(error) }),
          Effect.as([] as Array<string>),
        ),
      ),
    )
  }).pipe(Effect.map((lists) => [...new Set(lists.flat())]))

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
export const joinOnStartup = <E>(
  join: (addresses: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<string>, E>,
  options: JoinOptions,
): Effect.Effect<JoinOutcome> => {
  if (options.entries.length === 0) return Effect.succeed({ _tag: "Alone" })
  let lastFailure = "no join address resolved"
  const attempt = resolveJoinAddresses(options.entries, options.defaultPort).pipe(
    Effect.flatMap((resolved) => {
      const others = resolved.filter((address) => !options.self.has(address))
      if (resolved.length > 0 && others.length === 0) return Effect.succeed<JoinOutcome>({ _tag: "Alone" })
      if (others.length === 0) return Effect.fail("no join address resolved")
      return join(others).pipe(
        Effect.map((nodeIds): JoinOutcome => ({ _tag: "Joined", nodeIds })),
        Effect.mapError((error) => String(error instanceof Error ? error.message : error)),
      )
    }),
    Effect.tapError((reason) =>
      Effect.sync(() => {
        lastFailure = reason
      }).pipe(
        Effect.zipRight(
          Effect.logWarning("join failed; retrying").pipe(Effect.annotateLogs("reason", reason)),
        ),
      ),
    ),
  )
  return attempt.pipe(
    Effect.retry(Schedule.exponential("1 second").pipe(Schedule.union(Schedule.spaced("10 seconds")))),
    Effect.timeout(options.timeout),
    Effect.catchAll(() => Effect.succeed<JoinOutcome>({ _tag: "Failed", reason: lastFailure })),
  )
}
