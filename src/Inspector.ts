import { Context, Effect, Layer, type Scope } from "effect"
import { defaultRedactedHeaders, type ExchangeSummary } from "./Domain/Capture.js"
import { Gossip } from "./Gossip.js"
import { EndpointCapture } from "./Inspector/EndpointCapture.js"
import type { Recording, RecordingLimits } from "./Inspector/Recording.js"
import type { Exchange } from "./Proxy/Forward.js"

export { EndpointCapture } from "./Inspector/EndpointCapture.js"
export type { Recording } from "./Inspector/Recording.js"

/** The `--capture.*` settings. */
export interface CaptureSettings {
  /** Endpoints captured from the start. */
  readonly endpoints: ReadonlyArray<string>
  /** Exchanges kept per captured endpoint. */
  readonly exchanges: number
  /** KiB kept of each body. */
  readonly bodyKib: number
  /** Headers whose values are never kept, besides `defaultRedactedHeaders` (never kept in any case). */
  readonly redactHeaders: ReadonlyArray<string>
}

export const defaultCaptureSettings: CaptureSettings = {
  endpoints: [],
  exchanges: 100,
  bodyKib: 32,
  redactHeaders: [],
}

/** Requests this node took from clients, and per local endpoint the requests its upstreams served. */
export interface Traffic {
  readonly requests: number
  readonly served: ReadonlyMap<string, number>
}

/**
 * What passes through this node, for the people looking: which endpoints are captured (a ring of recent
 * exchanges each, see EndpointCapture), what they hold, live news of finished exchanges, and request counts. The
 * proxy feeds it; the admin API reads it.
 */
export class Inspector extends Context.Tag("pico/Inspector")<
  Inspector,
  {
    readonly nodeId: string
    /** The endpoint's capture when it is on. One Map lookup: it runs for every proxied request. */
    readonly captureOf: (endpointId: string) => EndpointCapture | undefined
    /** Starts capturing the endpoint (a capture already running is kept). */
    readonly start: (endpointId: string) => Effect.Effect<void>
    /** Stops capturing the endpoint and drops what was captured. */
    readonly stop: (endpointId: string) => Effect.Effect<void>
    readonly capturing: () => ReadonlyArray<string>
    /** The newest recording of a request id, in the endpoint's capture or, without one, in any. */
    readonly find: (requestId: string, endpointId?: string) => Recording | undefined
    /** Calls `listener` with each exchange of the endpoint that finishes, for the scope's lifetime. */
    readonly subscribe: (
      endpointId: string,
      listener: (summary: ExchangeSummary) => void,
    ) => Effect.Effect<void, never, Scope.Scope>
    /** Counts a finished exchange: the proxy calls it once per exchange. */
    readonly count: (exchange: Exchange, fromPeer: boolean) => void
    readonly traffic: () => Traffic
  }
>() {}

export const make = (settings: CaptureSettings) =>
  Effect.gen(function* () {
    const { nodeId } = yield* Gossip
    const limits: RecordingLimits = {
      bodyBytes: settings.bodyKib * 1024,
      // Additive: naming one more header must not let a credential through.
      redact: new Set(
        [...defaultRedactedHeaders, ...settings.redactHeaders].map((name) => name.toLowerCase()),
      ),
    }
    const captures = new Map<string, EndpointCapture>()
    const listeners = new Map<string, Set<(summary: ExchangeSummary) => void>>()
    const served = new Map<string, number>()
    let requests = 0

    const done = (recording: Recording) => {
      const interested = listeners.get(recording.endpoint)
      if (interested === undefined) return
      const summary = recording.summary()
      for (const listener of interested) listener(summary)
    }
    const startNow = (endpointId: string) => {
      if (!captures.has(endpointId))
        captures.set(endpointId, new EndpointCapture(endpointId, nodeId, settings.exchanges, limits, done))
    }
    for (const endpointId of settings.endpoints) startNow(endpointId)

    return Inspector.of({
      nodeId,
      captureOf: (endpointId) => (captures.size === 0 ? undefined : captures.get(endpointId)),
      start: (endpointId) => Effect.sync(() => startNow(endpointId)),
      stop: (endpointId) => Effect.sync(() => captures.delete(endpointId)),
      capturing: () => [...captures.keys()].sort(),
      find: (requestId, endpointId) => {
        if (endpointId !== undefined) return captures.get(endpointId)?.find(requestId)
        let newest: Recording | undefined
        for (const capture of captures.values()) {
          const found = capture.find(requestId)
          if (found !== undefined && (newest === undefined || found.startedAt > newest.startedAt))
            newest = found
        }
        return newest
      },
      subscribe: (endpointId, listener) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            const set = listeners.get(endpointId) ?? new Set()
            listeners.set(endpointId, set)
            set.add(listener)
          }),
          () =>
            Effect.sync(() => {
              const set = listeners.get(endpointId)
              set?.delete(listener)
              if (set?.size === 0) listeners.delete(endpointId)
            }),
        ),
      count: (exchange, fromPeer) => {
        if (!fromPeer) requests++
        if (exchange.route === "local" && exchange.endpointId !== undefined)
          served.set(exchange.endpointId, (served.get(exchange.endpointId) ?? 0) + 1)
      },
      traffic: () => ({ requests, served }),
    })
  })

export const layer = (
  settings: CaptureSettings = defaultCaptureSettings,
): Layer.Layer<Inspector, never, Gossip> => Layer.effect(Inspector, make(settings))
