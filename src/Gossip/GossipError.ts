import { Schema } from "effect"

/** A join or leave that reached nobody. */
export class GossipError extends Schema.TaggedError<GossipError>()("GossipError", {
  reason: Schema.Literal("join failed", "leave failed"),
  message: Schema.String,
}) {}
