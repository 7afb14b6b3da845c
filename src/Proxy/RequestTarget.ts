import type * as http from "node:http"

const SLASH = 47

/**
 * Brings the request target to origin-form. An absolute-form target (`GET http://other.example/a?b`, as sent to
 * proxies) becomes `/a?b`, and its authority takes the place of any Host header (RFC 9112 §3.2.2), so the endpoint
 * is the one the target names and the upstream sees a normal request. Returns false for a target that is neither
 * origin-form, absolute-form http(s) nor `*`.
 */
export const normalizeTarget = (req: http.IncomingMessage): boolean => {
  const url = req.url ?? ""
  if (url.charCodeAt(0) === SLASH || url === "*") return true
  const parsed = URL.parse(url)
  if (parsed === null || (parsed.protocol !== "http:" && parsed.protocol !== "https:") || parsed.host === "")
    return false
  req.url = `${parsed.pathname}${parsed.search}`
  const raw = req.rawHeaders
  const withoutHost: Array<string> = ["Host", parsed.host]
  for (let i = 0; i < raw.length; i += 2)
    if ((raw[i] as string).toLowerCase() !== "host") withoutHost.push(raw[i] as string, raw[i + 1] as string)
  req.rawHeaders = withoutHost
  req.headers.host = parsed.host
  return true
}
