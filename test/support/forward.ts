import { waitFor } from "./http.js"
import type { PicoProcess } from "./process.js"

/** `pico forward tcp` arguments for an endpoint through a proxy port, on an ephemeral local port. */
export const forwardArgs = (endpointId: string, proxyUrl: string, ...more: Array<string>): Array<string> => [
  ...["forward", "tcp", "--endpoint", endpointId, "--local.bind-addr", "127.0.0.1:0"],
  ...["--server.url", proxyUrl, ...more],
]

/** The local port a `pico forward tcp` process said it listens on, in its one line on stdout. */
export const forwardedPort = async (forward: PicoProcess): Promise<number> => {
  const line = /^listening on 127\.0\.0\.1:(\d+), forwarding to endpoint \S+ through \S+$/m
  await waitFor("pico forward listening", () => line.test(forward.text()))
  return Number(line.exec(forward.text())?.[1])
}
