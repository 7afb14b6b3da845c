import { listeningPort, type PicoProcess } from "./process.js"

/** A `pico server` process on loopback ephemeral ports, with what a cluster test needs to reach it. */
export interface ServerProcess {
  readonly process: PicoProcess
  readonly nodeId: string
  readonly gossipAddr: string
  readonly proxyPort: number
  readonly upstreamPort: number
  readonly adminPort: number
}

/**
 * Starts `pico server` through `pico` (a test's spawner, which stops it after the test) on loopback ephemeral
 * ports, gossiping fast (100 ms), joining the gossip addresses in `join`, with `flags` added.
 */
export const startServerProcess = async (
  pico: (args: ReadonlyArray<string>) => PicoProcess,
  join: ReadonlyArray<string>,
  flags: ReadonlyArray<string> = [],
): Promise<ServerProcess> => {
  const server = pico([
    "server",
    ...["--proxy.bind-addr", "127.0.0.1:0", "--upstream.bind-addr", "127.0.0.1:0"],
    ...[
      "--admin.bind-addr",
      "127.0.0.1:0",
      "--gossip.bind-addr",
      "127.0.0.1:0",
      "--gossip.interval",
      "100ms",
    ],
    ...join.flatMap((address) => ["--cluster.join", address]),
    ...flags,
  ])
  const gossip = await server.waitForLog("gossip started")
  return {
    process: server,
    nodeId: String(gossip["node-id"]),
    gossipAddr: String(gossip["advertise-addr"]),
    proxyPort: await listeningPort(server, "proxy"),
    upstreamPort: await listeningPort(server, "upstream"),
    adminPort: await listeningPort(server, "admin"),
  }
}
