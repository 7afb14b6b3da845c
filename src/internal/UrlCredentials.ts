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
 * Everything from after the scheme (`https://`, `http:/`, or the start when there is none, as in curl's
 * `user:pw@proxy`) to the text's last "@" goes: a password may hold "/", "?", "#" or "@" unescaped, and a path
 * with an "@" in it, shown less, is the lesser harm.
 */
export const withoutCredentials = (text: string): string => {
  const start = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/+/.exec(text)?.[0].length ?? 0
  const at = text.lastIndexOf("@")
  return at < start ? text : `${text.slice(0, start)}(redacted)${text.slice(at)}`
}
