import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as PicoLogger from "../src/PicoLogger.js"

const capture = (settings: PicoLogger.LogSettings, effect: Effect.Effect<void>) =>
  Effect.gen(function* () {
    const lines: Array<Record<string, unknown>> = []
    yield* effect.pipe(
      Effect.provide(PicoLogger.layer(settings, { write: (line) => lines.push(JSON.parse(line)) })),
    )
    return lines
  })

describe("PicoLogger", () => {
  it.effect("writes level, ts, subsystem, msg and the annotations", () =>
    Effect.gen(function* () {
      const lines = yield* capture(
        { level: "info", subsystems: [] },
        Effect.logWarning("add conn").pipe(Effect.annotateLogs({ subsystem: "proxy", "endpoint-id": "e" })),
      )
      expect(lines).toHaveLength(1)
      expect(Object.keys(lines[0] ?? {})).toEqual(["level", "ts", "subsystem", "msg", "endpoint-id"])
      expect(lines[0]).toMatchObject({
        level: "warn",
        subsystem: "proxy",
        msg: "add conn",
        "endpoint-id": "e",
      })
    }),
  )

  it.effect("filters by level, except for the subsystems asked for", () =>
    Effect.gen(function* () {
      const lines = yield* capture(
        { level: "warn", subsystems: ["tunnel"] },
        Effect.all([
          Effect.logInfo("hidden").pipe(Effect.annotateLogs("subsystem", "proxy")),
          Effect.logDebug("shown").pipe(Effect.annotateLogs("subsystem", "tunnel")),
          Effect.logDebug("hidden too").pipe(Effect.annotateLogs("subsystem", "tunnel.session")),
          Effect.logError("shown too"),
        ]).pipe(Effect.asVoid),
      )
      expect(lines.map((line) => [line.msg, line.subsystem, line.level])).toEqual([
        ["shown", "tunnel", "debug"],
        ["shown too", "main", "error"],
      ])
    }),
  )
})
