import { existsSync, readFileSync } from "node:fs"
import { mkdir, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { accepts, waitFor } from "./http.js"
import type { Host } from "./netns.js"
import { type PicoProcess, spawnProcess } from "./process.js"

/** The demo's load balancer config (docs/demo/nginx.conf): what the harness runs, so the demo is what is tested. */
export const demoConfigPath = new URL("../../docs/demo/nginx.conf", import.meta.url)

/**
 * The demo config for these nodes: each `upstream` block lists every node's address, with the parameters of the
 * block's first server (the demo names three Docker hosts, pico-1..3), and `down` for the nodes in `down`.
 * `httpPrelude` goes first in the `http` block, for the harness's own logging and temp paths, or to lower a
 * default the demo is expected to override.
 */
export const renderDemoConfig = (
  nodes: ReadonlyArray<Host>,
  httpPrelude: ReadonlyArray<string>,
  down: ReadonlySet<Host> = new Set(),
): string => {
  const demo = readFileSync(demoConfigPath, "utf8")
  const rendered = demo
    .replace(/upstream (\w+) \{([^}]*)\}/g, (_block, name: string, servers: string) => {
      const parameters = /server [\w.-]+(:\d+[^;]*);/.exec(servers)?.[1]
      if (parameters === undefined) throw new Error(`upstream ${name} in the demo config has no server`)
      const server = (node: Host) => `server ${node.ip}${parameters}${down.has(node) ? " down" : ""};`
      return `upstream ${name} { ${nodes.map(server).join(" ")} }`
    })
    .replace(/^http \{$/m, `http {\n${httpPrelude.map((line) => `  ${line}\n`).join("")}`)
  if (rendered === demo) throw new Error("the demo config has no http block or upstreams to render")
  return rendered
}

const nginxBinary = (): string =>
  process.env.NGINX_BIN ??
  ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"].find((path) =>
    existsSync(path),
  ) ??
  "nginx"

/** The demo's balancer, running. */
export interface DemoBalancer {
  readonly process: PicoProcess
  /**
   * Marks `nodes` down (and every other node up) and reloads, as an operator takes a node out of NGINX before
   * stopping it; resolves once the workers of the old configuration stopped taking clients, so only requests
   * already under way may still reach those nodes. (They may keep WebSockets open for a long time, so waiting
   * for them to exit could wait for ever.)
   */
  readonly setDown: (nodes: ReadonlyArray<Host>) => Promise<void>
}

/**
 * Runs the demo's balancer on `host` in front of `nodes`, with its error log and temp files in `dir`, and waits until
 * it accepts on the proxy port. `httpPrelude` as for renderDemoConfig.
 */
export const startDemoBalancer = async (
  host: Host,
  nodes: ReadonlyArray<Host>,
  dir: string,
  httpPrelude: ReadonlyArray<string> = [],
): Promise<DemoBalancer> => {
  await mkdir(dir, { recursive: true })
  const config = join(dir, "nginx.conf")
  const errorLog = join(dir, "error.log")
  const render = (down?: ReadonlySet<Host>) =>
    renderDemoConfig(
      nodes,
      [
        // The error log (see balancerErrors) says why a request failed; a line per request would only cost CPU.
        "access_log off;",
        ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map(
          (kind) => `${kind}_temp_path ${join(dir, kind)};`,
        ),
        ...httpPrelude,
      ],
      down,
    )
  await writeFile(config, render())
  const nginx = spawnProcess(
    nginxBinary(),
    ["-c", config, "-g", `daemon off; pid ${join(dir, "nginx.pid")}; error_log ${errorLog} notice;`],
    { netns: host.netns },
  )
  await waitFor(
    "the load balancer to accept connections",
    async () => {
      if (nginx.child.exitCode !== null) throw new Error(`nginx exited: ${nginx.text()}`)
      return accepts(8000, host.ip)
    },
    15_000,
  )
  return {
    process: nginx,
    setDown: async (down) => {
      await writeFile(config, render(new Set(down)))
      const seen = readFileSync(errorLog, "utf8").length
      nginx.child.kill("SIGHUP")
      await waitFor(
        "the balancer to reload",
        () => {
          const since = readFileSync(errorLog, "utf8").slice(seen)
          // A configuration nginx refused: it keeps the old one, and says why.
          const refused = /^.*\[emerg\].*$/m.exec(since)?.[0]
          if (refused !== undefined) throw new Error(`nginx refused the new configuration: ${refused}`)
          // The (one) worker of the old configuration logs this when it closes its listening sockets.
          return since.includes("gracefully shutting down")
        },
        15_000,
      )
    },
  }
}

/**
 * The errors and warnings in the balancer's error log since `since` (wall-clock ms; the log has whole seconds),
 * without what varies per request: `connect() failed (111: Connection refused) while connecting to upstream
 * http://10.0.0.11:8000/`.
 */
export const balancerErrors = (dir: string, since: number): Array<string> => {
  let log = ""
  try {
    log = readFileSync(join(dir, "error.log"), "utf8")
  } catch {
    return []
  }
  const lines: Array<string> = []
  for (const line of log.split("\n")) {
    const entry =
      /^(\S+ \S+) \[(?:warn|error|crit|alert|emerg)\] \d+#\d+: (?:\*\d+ )?(.*?)(?:, client: .*)?$/.exec(line)
    if (entry === null || new Date((entry[1] as string).replaceAll("/", "-")).getTime() < since - 1000)
      continue
    const upstream = /upstream: "([^"]*)"/.exec(line)?.[1]
    lines.push(upstream === undefined ? (entry[2] as string) : `${entry[2]} ${upstream}`)
  }
  return lines
}
