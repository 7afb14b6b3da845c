import { readFile } from "node:fs/promises"
import { Console, Effect, Redacted } from "effect"
import type { ReplayEdits } from "../Domain/Capture.js"
import { describeSystemError } from "../internal/SystemError.js"
import { readSecretValue } from "../PicoConfig/KeyMaterial.js"
import type { Resolved } from "../PicoConfig/Setting.js"
import { followSettings, replaySettings, statusSettings } from "../PicoConfig/Status.js"
import {
  captureProgram,
  followProgram,
  replayProgram,
  type StatusQuery,
  statusProgram,
  statusQueries,
} from "../programs/status.js"
import { StatusClient, StatusError } from "../Status.js"
import { loadSettings, reportConfigError } from "./Program.js"
import type { Invocation, Runner } from "./Spec.js"

const badSetting = (message: string, cause?: unknown) =>
  new StatusError({ reason: "bad setting", message, cause })

/**
 * Runs a program against the admin API the status flags name. Any failure is one line on stderr ("failed to get
 * cluster nodes: cannot reach localhost:8002: connect ECONNREFUSED ...") and exit 1.
 */
const withClient = <E>(
  settings: Resolved<typeof statusSettings>,
  failed: string,
  program: Effect.Effect<void, StatusError | E, StatusClient>,
) =>
  Effect.gen(function* () {
    // A token file that cannot be read is a bad setting, reported as every other one is.
    const token = yield* readSecretValue(settings.auth.token, "auth.token").pipe(
      Effect.tapError(reportConfigError),
      Effect.mapError((error) => badSetting(error.message, error)),
    )
    const target = {
      serverUrl: settings.server.url,
      forward: settings.forward === "" ? undefined : settings.forward,
      token: token === undefined ? undefined : Redacted.make(token),
      timeout: settings.timeout,
    }
    yield* program.pipe(
      Effect.provide(StatusClient.layer(target)),
      Effect.tapError((error) => Console.error(`${failed}: ${(error as { message: string }).message}`)),
    )
  })

/** A leaf command that asks one question through the StatusClient and prints the answer. */
const show =
  (question: (args: ReadonlyArray<string>) => StatusQuery): Runner =>
  (invocation) =>
    Effect.gen(function* () {
      const settings = yield* loadSettings(statusSettings, invocation)
      const asked = question(invocation.args)
      yield* withClient(settings, `failed to get ${asked.what}`, statusProgram(asked, settings.output))
    })

export const proxyEndpoints = show(() => statusQueries.proxyEndpoints)
export const clusterNodes = show(() => statusQueries.clusterNodes)
export const clusterNode = show(([id = ""]) => statusQueries.clusterNode(id))
export const gossipNodes = show(() => statusQueries.gossipNodes)
export const gossipNode = show(([id = ""]) => statusQueries.gossipNode(id))
export const proxyRequest = show(([id = ""]) => statusQueries.proxyRequest(id))

/** `pico status proxy requests <endpoint> [--follow]`: the captured exchanges, or each new one as it finishes. */
export const proxyRequests: Runner = (invocation) =>
  Effect.gen(function* () {
    const settings = yield* loadSettings({ ...statusSettings, ...followSettings }, invocation)
    const [endpointId = ""] = invocation.args
    if (!settings.follow) return yield* show(() => statusQueries.proxyRequests(endpointId))(invocation)
    yield* withClient(
      settings,
      `failed to follow requests of ${endpointId}`,
      followProgram(endpointId, settings.output),
    )
  })

const capture =
  (action: "start" | "stop"): Runner =>
  (invocation) =>
    Effect.gen(function* () {
      const settings = yield* loadSettings(statusSettings, invocation)
      const [endpointId = ""] = invocation.args
      yield* withClient(
        settings,
        `failed to ${action} capturing ${endpointId}`,
        captureProgram(endpointId, action, settings.output),
      )
    })

export const captureStart = capture("start")
export const captureStop = capture("stop")

/** "Name: value" sets a header, "Name:" removes it. */
const headerEdits = (headers: ReadonlyArray<string>) =>
  Effect.forEach(headers, (header) => {
    const colon = header.indexOf(":")
    return colon <= 0
      ? Effect.fail(badSetting(`--header ${JSON.stringify(header)}: expected "Name: value" or "Name:"`))
      : Effect.succeed([header.slice(0, colon).trim(), header.slice(colon + 1).trim() || null] as const)
  }).pipe(Effect.map((pairs) => Object.fromEntries(pairs)))

const replayEdits = (settings: Resolved<typeof replaySettings>) =>
  Effect.gen(function* () {
    const edits: { -readonly [K in keyof ReplayEdits]: ReplayEdits[K] } = {}
    if (settings.header.length > 0) edits.headers = yield* headerEdits(settings.header)
    if (settings.bodyFile !== "")
      edits.body_base64 = (yield* Effect.tryPromise({
        try: () => readFile(settings.bodyFile),
        catch: (cause) =>
          badSetting(`--body-file ${settings.bodyFile}: ${describeSystemError(cause)}`, cause),
      })).toString("base64")
    return edits
  })

/** `pico replay <rid>`: sends a captured request again, with the edits the flags give. */
export const replay: Runner = (invocation: Invocation) =>
  Effect.gen(function* () {
    const settings = yield* loadSettings({ ...statusSettings, ...replaySettings }, invocation)
    const [requestId = ""] = invocation.args
    yield* withClient(
      settings,
      `failed to replay ${requestId}`,
      Effect.flatMap(replayEdits(settings), (edits) => replayProgram(requestId, edits, settings.output)),
    )
  })
