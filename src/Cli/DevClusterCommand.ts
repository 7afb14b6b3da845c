import { Effect } from "effect"
import * as DevCluster from "../DevCluster.js"
import { parseHostPort } from "../Domain/Address.js"
import { devClusterSettings } from "../PicoConfig/DevCluster.js"
import { loadSettings, withLogging } from "./Program.js"
import type { Runner } from "./Spec.js"

// Bind addresses were validated when the settings were loaded.
const address = (text: string) => parseHostPort(text) as NonNullable<ReturnType<typeof parseHostPort>>

/** `pico dev cluster`: N nodes and their load balancer in this process, until interrupted. */
export const run: Runner = (invocation) =>
  Effect.gen(function* () {
    const settings = yield* loadSettings(devClusterSettings, invocation)
    return yield* DevCluster.run({
      nodes: settings.nodes,
      proxy: address(settings.proxy.bindAddr),
      upstream: address(settings.upstream.bindAddr),
      admin: address(settings.admin.bindAddr),
      logLevel: settings.log.level,
    }).pipe(withLogging("dev cluster", devClusterSettings, settings, invocation.version))
  })
