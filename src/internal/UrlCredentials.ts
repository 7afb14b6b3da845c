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
