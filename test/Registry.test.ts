import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Scope } from "effect"
import { EndpointId } from "../src/Domain/EndpointId.js"
import * as Gossip from "../src/Gossip.js"
import { Registry, layer as registryLayer, type Upstream } from "../src/Registry.js"
import type { TunnelSession } from "../src/Tunnel.js"

const upstream = (
  endpointId: string,
  name: string,
  live = { open: true },
  kind: Upstream["kind"] = "http",
): Upstream => ({
  endpointId: EndpointId(endpointId),
  kind,
  remoteAddr: name,
  session: { canOpenStream: () => live.open } as unknown as TunnelSession,
})

const testLayer = registryLayer.pipe(Layer.provideMerge(Gossip.layerSingleNode("node-1")))

const pickNames = (registry: Registry["Type"], endpointId: string, count: number) =>
  Array.from({ length: count }, () => registry.pickLocal(EndpointId(endpointId))?.remoteAddr)

describe("Registry", () => {
  it.effect("round-robins and stays fair when upstreams leave", () =>
    Effect.gen(function* () {
      const registry = yield* Registry
      const scopes = new Map<string, Scope.CloseableScope>()
      for (const name of ["1", "2", "3", "4"]) {
        const scope = yield* Scope.make()
        scopes.set(name, scope)
        yield* registry.register(upstream("e", name)).pipe(Scope.extend(scope))
      }
      expect(pickNames(registry, "e", 7)).toEqual(["1", "2", "3", "4", "1", "2", "3"])
      yield* Scope.close(scopes.get("2") as Scope.CloseableScope, Exit.void)
      yield* Scope.close(scopes.get("3") as Scope.CloseableScope, Exit.void)
      expect(pickNames(registry, "e", 3)).toEqual(["4", "1", "4"])
    }).pipe(Effect.provide(testLayer)),
  )

  it.effect("skips an upstream whose session can no longer open streams", () =>
    Effect.gen(function* () {
      const registry = yield* Registry
      const closing = { open: true }
      yield* registry.register(upstream("e", "a", closing))
      yield* registry.register(upstream("e", "b"))
      closing.open = false
      expect(pickNames(registry, "e", 3)).toEqual(["b", "b", "b"])
      closing.open = true
      expect(new Set(pickNames(registry, "e", 2))).toEqual(new Set(["a", "b"]))
      expect(registry.pickLocal(EndpointId("other"))).toBeUndefined()
    }).pipe(Effect.scoped, Effect.provide(testLayer)),
  )

  it.effect("publishes each endpoint's upstream count through gossip", () =>
    Effect.gen(function* () {
      const registry = yield* Registry
      const gossip = yield* Gossip.Gossip
      const first = yield* Scope.make()
      yield* registry.register(upstream("e", "a")).pipe(Scope.extend(first))
      const second = yield* Scope.make()
      yield* registry.register(upstream("e", "b")).pipe(Scope.extend(second))
      expect((yield* gossip.localEntries).get("endpoint:e")).toBe("2")
      yield* Scope.close(first, Exit.void)
      expect((yield* gossip.localEntries).get("endpoint:e")).toBe("1")
      yield* Scope.close(second, Exit.void)
      expect((yield* gossip.localEntries).has("endpoint:e")).toBe(false)
      expect((yield* registry.localEndpoints).size).toBe(0)
    }).pipe(Effect.provide(testLayer)),
  )

  it.effect("records each endpoint's kind, and gossips a TCP endpoint's count with it", () =>
    Effect.gen(function* () {
      const registry = yield* Registry
      const gossip = yield* Gossip.Gossip
      yield* registry.register(upstream("db", "a", { open: true }, "tcp"))
      yield* registry.register(upstream("db", "b", { open: true }, "tcp"))
      yield* registry.register(upstream("web", "c"))
      expect(registry.kindOf(EndpointId("db"))).toBe("tcp")
      expect(registry.kindOf(EndpointId("web"))).toBe("http")
      expect(registry.kindOf(EndpointId("nobody"))).toBeUndefined()
      const entries = yield* gossip.localEntries
      expect([entries.get("endpoint:db"), entries.get("endpoint:web")]).toEqual(["2 tcp", "1"])
    }).pipe(Effect.scoped, Effect.provide(testLayer)),
  )
})
