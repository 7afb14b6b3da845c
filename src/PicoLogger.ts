import { Cause, HashMap, Layer, Logger, LogLevel } from "effect"

/** The `--log.*` settings the logger needs. */
export interface LogSettings {
  readonly level: "debug" | "info" | "warn" | "error"
  readonly subsystems: ReadonlyArray<string>
}

const levelName = (level: LogLevel.LogLevel): string => {
  switch (level._tag) {
    case "All":
    case "Trace":
    case "Debug":
      return "debug"
    case "Info":
      return "info"
    case "Warning":
      return "warn"
    default:
      return "error"
  }
}

const minimumLevel: Record<LogSettings["level"], LogLevel.LogLevel> = {
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  error: LogLevel.Error,
}

const messageText = (message: unknown): string => {
  if (Array.isArray(message)) return message.map(messageText).join(" ")
  return typeof message === "string" ? message : JSON.stringify(message)
}

export interface LogSink {
  write(line: string): void
}

/**
 * JSON lines: `level`, `ts`, `subsystem`, `msg`, then the annotations as fields. `--log.subsystems` shows every
 * level for the named subsystems (exact match), so one noisy area can be debugged without drowning in the rest.
 */
export const make = (settings: LogSettings, sink: LogSink): Logger.Logger<unknown, void> => {
  const minimum = minimumLevel[settings.level]
  const verbose = new Set(settings.subsystems)
  return Logger.make(({ logLevel, message, annotations, cause, date }) => {
    const subsystem = HashMap.get(annotations, "subsystem")
    const subsystemName = subsystem._tag === "Some" ? String(subsystem.value) : "main"
    if (LogLevel.lessThan(logLevel, minimum) && !verbose.has(subsystemName)) return
    const record: Record<string, unknown> = {
      level: levelName(logLevel),
      ts: date.toISOString(),
      subsystem: subsystemName,
      msg: messageText(message),
    }
    for (const [key, value] of annotations) if (key !== "subsystem") record[key] = value
    if (!Cause.isEmpty(cause)) record.error = Cause.pretty(cause, { renderErrorCause: true })
    sink.write(`${JSON.stringify(record)}\n`)
  })
}

const stderr: LogSink = { write: (line) => process.stderr.write(line) }

/**
 * Replaces Effect's default logger. The minimum level is opened fully because filtering happens inside the
 * logger, where the subsystem override is known.
 */
export const layer = (settings: LogSettings, sink: LogSink = stderr): Layer.Layer<never> =>
  Layer.merge(
    Logger.replace(Logger.defaultLogger, make(settings, sink)),
    Logger.minimumLogLevel(LogLevel.All),
  )
