import { HttpClient, HttpClientRequest, type HttpClientResponse } from "@effect/platform"
import { Duration, Effect, Redacted, Schema } from "effect"
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
  message: Schema.String,
}) {}

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
export const fetchStatus = <A, I>(
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
        (error) => new StatusError({ message: `cannot reach ${url.host}: ${rootCause(error)}` }),
      ),
      Effect.timeoutFail({
        duration: target.timeout,
        onTimeout: () =>
          new StatusError({
            message: `no answer from ${url.host} within ${formatGoDuration(Duration.toMillis(target.timeout))} (--timeout)`,
          }),
      }),
    )
    if (response.status !== 200) return yield* new StatusError({ message: yield* describeStatus(response) })
    return yield* response.json.pipe(
      Effect.flatMap(Schema.decodeUnknown(schema)),
      Effect.mapError(
        (error) => new StatusError({ message: `unexpected answer from ${url.host}: ${error.message}` }),
      ),
    )
  })
