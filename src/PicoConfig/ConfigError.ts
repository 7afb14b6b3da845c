import { Schema } from "effect"

/**
 * A configuration problem, worded for the operator: it names the field, where the value came from, and the value
 * (never a secret's). `reason` says what kind: a value that is wrong or missing, a file that cannot be read, or
 * key material or a certificate that cannot be used.
 */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  reason: Schema.Literal("invalid", "unreadable", "unusable"),
  message: Schema.String,
  cause: Schema.optional(Schema.Defect),
}) {}
