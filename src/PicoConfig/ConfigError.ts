import { Schema } from "effect"

/** A configuration problem, worded for the operator: it names the field, where the value came from, and the value. */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  message: Schema.String,
}) {}
