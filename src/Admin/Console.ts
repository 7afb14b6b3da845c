import { Effect } from "effect"
import type { AdminResponse, Handler } from "../internal/Router.js"
import { type ConsoleFileName, readConsoleFiles } from "./ConsoleFiles.js"

const contentTypes: Record<ConsoleFileName, string> = {
  "index.html": "text/html; charset=utf-8",
  "console.js": "text/javascript; charset=utf-8",
  "console.css": "text/css; charset=utf-8",
}

/** Scripts and styles come from this port alone; the page talks to this port alone; nothing may frame it. */
const securityHeaders = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache",
}

const files = readConsoleFiles()

const serve =
  (name: ConsoleFileName): Handler =>
  () =>
    Effect.succeed({
      status: 200,
      body: files[name],
      contentType: contentTypes[name],
      headers: securityHeaders,
    } satisfies AdminResponse)

/**
 * The web console at `/`: a static page and its script and styles (no data in them), which read the admin API
 * from the browser: nodes, endpoints, request rates, and the inspector.
 */
export const consoleRoutes: Record<string, Handler> = {
  "/": serve("index.html"),
  "/console.js": serve("console.js"),
  "/console.css": serve("console.css"),
}
