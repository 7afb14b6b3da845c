import { Effect, Exit, Scope } from "effect"
import * as LoadBalancer from "../../src/DevCluster/LoadBalancer.js"

/** The dev cluster's load balancer on an ephemeral port, for tests; `backends` are ports on 127.0.0.1. */
export const startLoadBalancer = async (
  backends: () => ReadonlyArray<number>,
): Promise<{ readonly port: number; readonly close: () => Promise<void> }> => {
  const scope = await Effect.runPromise(Scope.make())
  const bound = await Effect.runPromise(
    LoadBalancer.make("proxy", { host: "127.0.0.1", port: 0 }, () =>
      backends().map((port) => ({ host: "127.0.0.1", port })),
    ).pipe(Scope.extend(scope)),
  )
  return { port: bound.port, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}
