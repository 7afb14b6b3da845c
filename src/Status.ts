import { HttpClient, HttpClientRequest, type HttpClientResponse } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Context, Duration, Effect, Layer, Option, Redacted, Schema, Stream } from "effect"
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
    /** Asks an admin route to act (PUT, DELETE, POST with a JSON body) and decodes its answer with `schema`. */
    readonly send: <A, I>(
      method: "PUT" | "DELETE" | "POST",
      path: string,
      body: unknown,
      schema: Schema.Schema<A, I>,
    ) => Effect.Effect<A, StatusError>
    /** The `data:` payloads of an admin event stream, as they come, until it ends. */
    readonly events: (path: string) => Stream.Stream<string, StatusError>
  }
>() {
  /** Over HTTP(S) to `target`, with Node's HTTP client. */
  static readonly layer = (target: StatusTarget): Layer.Layer<StatusClient> =>
    Layer.effect(
      StatusClient,
      Effect.map(HttpClient.HttpClient, (client) =>
        StatusClient.of({
          get: (path, schema) =>
            fetchStatus(target, HttpClientRequest.get(urlFor(target, path)), schema).pipe(
              Effect.provideService(HttpClient.HttpClient, client),
            ),
          send: (method, path, body, schema) =>
            fetchStatus(
              target,
              HttpClientRequest.make(method)(urlFor(target, path)).pipe(
                HttpClientRequest.bodyUnsafeJson(body),
              ),
              schema,
            ).pipe(Effect.provideService(HttpClient.HttpClient, client)),
          events: (path) =>
            Stream.unwrapScoped(
              Effect.map(respond(target, HttpClientRequest.get(urlFor(target, path))), (response) =>
                response.stream.pipe(
                  Stream.decodeText(),
                  Stream.splitLines,
                  Stream.filterMap((line) =>
                    line.startsWith("data: ") ? Option.some(line.slice(6)) : Option.none(),
                  ),
                  Stream.mapError(
                    (error) =>
                      new StatusError({
                        reason: "unreachable",
                        message: `the stream broke off (the node shutting down?): ${rootCause(error)}`,
                        cause: error,
                      }),
                  ),
                ),
              ),
            ).pipe(Stream.provideService(HttpClient.HttpClient, client)),
        }),
      ),
    ).pipe(Layer.provide(NodeHttpClient.layer))
}

/** The admin URL of `path`, which may carry a query of its own ("...?follow"). */
const urlFor = (target: StatusTarget, path: string): URL => {
  const url = new URL(target.serverUrl)
  const [pathname = "", search = ""] = path.split("?", 2)
  url.pathname = `${url.pathname.replace(/\/+$/, "")}${pathname}`
  const query = new URLSearchParams(search)
  if (target.forward !== undefined) query.set("forward", target.forward)
  url.search = query.toString()
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

/**
 * Sends a request with the token, and waits (up to --timeout) for an answer with status 200: another status is
 * a StatusError quoting Pico's JSON error.
 */
const respond = (
  target: StatusTarget,
  unsigned: HttpClientRequest.HttpClientRequest,
): Effect.Effect<HttpClientResponse.HttpClientResponse, StatusError, HttpClient.HttpClient> =>
  Effect.gen(function* () {
    const url = new URL(unsigned.url)
    const request =
      target.token === undefined
        ? unsigned
        : unsigned.pipe(HttpClientRequest.bearerToken(Redacted.value(target.token)))
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
    return response
  })

/** Sends a request to a status route and decodes its JSON answer with `schema`. */
const fetchStatus = <A, I>(
  target: StatusTarget,
  request: HttpClientRequest.HttpClientRequest,
  schema: Schema.Schema<A, I>,
): Effect.Effect<A, StatusError, HttpClient.HttpClient> =>
  Effect.gen(function* () {
    const url = new URL(request.url)
    const response = yield* respond(target, request)
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
