/** Plain wording for the system errors a wrong address or path produces. */
const reasons: Readonly<Record<string, string>> = {
  EADDRINUSE: "address already in use",
  EADDRNOTAVAIL: "no such address on this machine",
  EACCES: "permission denied",
  ENOENT: "no such file",
  EISDIR: "is a directory, not a file",
}

/** The code of a Node system error ("EADDRINUSE"), from the error or from the message that quotes it. */
const codeOf = (error: unknown): string | undefined => {
  const code = (error as { code?: unknown } | undefined)?.code
  if (typeof code === "string") return code
  const message = typeof error === "string" ? error : error instanceof Error ? error.message : ""
  return /\b(E[A-Z]{3,})\b/.exec(message)?.[1]
}

/**
 * "address already in use" for an EADDRINUSE, and so on: what to tell someone about to fix a flag. Anything
 * unfamiliar keeps Node's own message.
 */
export const describeSystemError = (error: unknown): string => {
  const reason = reasons[codeOf(error) ?? ""]
  if (reason !== undefined) return reason
  return typeof error === "string" ? error : error instanceof Error ? error.message : String(error)
}
