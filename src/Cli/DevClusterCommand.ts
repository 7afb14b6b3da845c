import { Effect } from "effect"
import * as DevCluster from "../DevCluster.js"
import { devClusterSettings } from "../PicoConfig/DevCluster.js"
import { loadSettings, withLogging } from "./Program.js"
import type { Runner } from "./Spec.js"

/** `pico dev cluster`: N nodes and their load balancer in this process, until interrupted. */
export const run: Runner = (invocation) =>
  Effect.gen(function* () {
    const settings = yield* loadSettings(devClusterSettings, invocation)
    return yield* DevCluster.run({
      nodes: settings.nodes,
      proxy: settings.proxy.bindAddr,
      upstream: settings.upstream.bindAddr,
      admin: settings.admin.bindAddr,
      logLevel: settings.log.level,
    }).pipe(withLogging("dev cluster", devClusterSettings, settings, invocation.version))
  })
