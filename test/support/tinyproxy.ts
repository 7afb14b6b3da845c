import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { accepts, closedPort, waitFor } from "./http.js"
import { spawnProcess } from "./process.js"

/** A real forward proxy (Debian's tinyproxy), listening on 127.0.0.1, that reports the CONNECTs it was asked for. */
export interface ForwardProxy {
  readonly port: number
  /** The targets (host:port) of every CONNECT request the proxy has received so far. */
  readonly connects: () => ReadonlyArray<string>
  readonly stop: () => Promise<unknown>
}

/**
 * Starts tinyproxy in the foreground with its connection log on stderr. It allows CONNECT to any port (no
 * ConnectPort lines) from anyone on loopback; with `basicAuth` it demands those credentials (407 otherwise).
 */
export const startTinyproxy = async (basicAuth?: {
  user: string
  password: string
}): Promise<ForwardProxy> => {
  // tinyproxy cannot bind port 0: take a free port and give it back to tinyproxy.
  const port = await closedPort()
  const dir = mkdtempSync(join(tmpdir(), "pico-tinyproxy-"))
  const config = join(dir, "tinyproxy.conf")
  writeFileSync(
    config,
    [
      `Port ${port}`,
      "Listen 127.0.0.1",
      "Timeout 60",
      "MaxClients 50",
      "LogLevel Connect",
      ...(basicAuth === undefined ? [] : [`BasicAuth ${basicAuth.user} ${basicAuth.password}`]),
      "",
    ].join("\n"),
  )
  const proxy = spawnProcess("tinyproxy", ["-d", "-c", config])
  await waitFor("tinyproxy listening", () => accepts(port))
  return {
    port,
    connects: () =>
      [...proxy.text().matchAll(/Request \(file descriptor \d+\): CONNECT (\S+) HTTP/g)].map(
        (match) => match[1] as string,
      ),
    stop: proxy.stop,
  }
}
