/** Decodes a URL's percent-escapes, keeping a malformed one as written (decodeURIComponent would throw). */
const decodeLeniently = (text: string): string => {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/** The `user:password` of a URL, decoded, for Basic authentication; undefined when it carries none. */
export const urlCredentials = (url: URL): string | undefined =>
  url.username === "" && url.password === ""
    ? undefined
    : `${decodeLeniently(url.username)}:${decodeLeniently(url.password)}`

/**
 * A URL as Pico prints it: any userinfo (`user:password@`) replaced by "(redacted)", since it is a credential.
 * Only the authority is looked at (from the start when there is no `scheme://`, as in curl's `user:pw@proxy`),
 * up to its last "@", where URL parsers end userinfo, so a password holding an "@" does not leak its tail.
 */
export const withoutCredentials = (text: string): string => {
  const start = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.exec(text)?.[0].length ?? 0
  const authorityEnd = text.slice(start).search(/[/?#]/)
  const authority = authorityEnd < 0 ? text.slice(start) : text.slice(start, start + authorityEnd)
  const at = authority.lastIndexOf("@")
  return at < 0 ? text : `${text.slice(0, start)}(redacted)${text.slice(start + at)}`
}
