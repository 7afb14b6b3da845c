import { HttpClient, HttpClientRequest, type HttpClientResponse } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Context, Duration, Effect, Layer, Redacted, Schema } from "effect"
import { formatGoDuration } from "./PicoConfig/Duration.js"

/** Where `pico status` sends its requests, and how. */
export interface StatusTarget {
  /** A node's admin URL (usually a load balancer's), an http(s) URL; a path in it is a prefix. */
  readonly serverUrl: string
  /** Run the request on this node instead (`?forward=<node id>`). */
  readonly forward: string | undefined
  /** Sent as "Authorization: Bearer <token>", for an admin port that requires one. */
  readonly token: Redacted.Redacted<string> | undefined
  /** How long to wait for the answer (--timeout). */
  readonly timeout: Duration.DurationInput
}

/** A status request that got no usable answer; the message is one line for a human. */
export class StatusError extends Schema.TaggedError<StatusError>()("StatusError", {
  reason: Schema.Literal("unreachable", "timeout", "refused", "unexpected answer", "bad setting"),
  message: Schema.String,
  cause: Schema.optional(Schema.Defect),
}) {}

/**
 * Reads a node's admin API for `pico status`: the HTTP client by default (`StatusClient.layer`), or anything else
 * that answers the same routes (a test, a library user's own transport).
 */
export class StatusClient extends Context.Tag("pico/StatusClient")<
  StatusClient,
  {
    /** GETs an admin route and decodes its JSON body with `schema`. */
    readonly get: <A, I>(path: string, schema: Schema.Schema<A, I>) => Effect.Effect<A, StatusError>
  }
>() {
  /** Over HTTP(S) to `target`, with Node's HTTP client. */
  static readonly layer = (target: StatusTarget): Layer.Layer<StatusClient> =>
    Layer.effect(
      StatusClient,
      Effect.map(HttpClient.HttpClient, (client) =>
        StatusClient.of({
          get: (path, schema) =>
            fetchStatus(target, path, schema).pipe(Effect.provideService(HttpClient.HttpClient, client)),
        }),
      ),
    ).pipe(Layer.provide(NodeHttpClient.layer))
}

const urlFor = (target: StatusTarget, path: string): URL => {
  const url = new URL(target.serverUrl)
  url.pathname = `${url.pathname.replace(/\/+$/, "")}${path}`
  url.search = target.forward === undefined ? "" : new URLSearchParams({ forward: target.forward }).toString()
  return url
}

const ErrorBody = Schema.parseJson(Schema.Struct({ error: Schema.String }))

/** "404 node not found": the status and Pico's JSON error, when there is one. */
const describeStatus = (response: HttpClientResponse.HttpClientResponse) =>
  response.text.pipe(
    Effect.flatMap(Schema.decodeUnknown(ErrorBody)),
    Effect.map(({ error }) => `${response.status} ${error}`),
    Effect.orElseSucceed(() => `status ${response.status}`),
  )

/** The innermost cause of a transport failure ("connect ECONNREFUSED 127.0.0.1:8002"). */
const rootCause = (error: unknown): string => {
  let cause = error
  while (cause instanceof Error && cause.cause !== undefined) cause = cause.cause
  return cause instanceof Error ? cause.message : String(cause)
}

/** GETs a status route and decodes its JSON body with `schema`. */
const fetchStatus = <A, I>(
  target: StatusTarget,
  path: string,
  schema: Schema.Schema<A, I>,
): Effect.Effect<A, StatusError, HttpClient.HttpClient> =>
  Effect.gen(function* () {
    const url = urlFor(target, path)
    const request =
      target.token === undefined
        ? HttpClientRequest.get(url)
        : HttpClientRequest.get(url).pipe(HttpClientRequest.bearerToken(Redacted.value(target.token)))
    const response = yield* HttpClient.execute(request).pipe(
      Effect.mapError(
        (error) =>
          new StatusError({
            reason: "unreachable",
            message: `cannot reach ${url.host}: ${rootCause(error)}`,
            cause: error,
          }),
      ),
      Effect.timeoutFail({
        duration: target.timeout,
        onTimeout: () =>
          new StatusError({
            reason: "timeout",
            message: `no answer from ${url.host} within ${formatGoDuration(Duration.toMillis(target.timeout))} (--timeout)`,
          }),
      }),
    )
    if (response.status !== 200)
      return yield* new StatusError({ reason: "refused", message: yield* describeStatus(response) })
    return yield* response.json.pipe(
      Effect.flatMap(Schema.decodeUnknown(schema)),
      Effect.mapError(
        (error) =>
          new StatusError({
            reason: "unexpected answer",
            message: `unexpected answer from ${url.host}: ${error.message}`,
            cause: error,
          }),
      ),
    )
  })
