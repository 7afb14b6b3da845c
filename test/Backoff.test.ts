import { describe, expect, it } from "vitest"
import { Backoff } from "../src/Agent/Backoff.js"
import { listenerUrl } from "../src/Agent.js"

describe("reconnect backoff", () => {
  it("doubles from 1s to a 30s cap and starts over on reset", () => {
    const backoff = new Backoff(1000, 30_000, () => 0.5)
    expect(Array.from({ length: 7 }, () => backoff.next())).toEqual([
      1000, 2000, 4000, 8000, 16_000, 30_000, 30_000,
    ])
    backoff.reset()
    expect(backoff.next()).toBe(1000)
  })

  it("jitters within ±20%", () => {
    expect(new Backoff(1000, 30_000, () => 0).next()).toBe(800)
    expect(new Backoff(1000, 30_000, () => 0.999999).next()).toBe(1200)
  })
})

describe("listener URL", () => {
  it("maps http(s) to ws(s) and keeps a path prefix", () => {
    expect(listenerUrl("http://localhost:8001", "my-endpoint")).toBe(
      "ws://localhost:8001/pico/v1/listener/my-endpoint",
    )
    expect(listenerUrl("https://pico.example.com/tunnels/", "e")).toBe(
      "wss://pico.example.com/tunnels/pico/v1/listener/e",
    )
    expect(listenerUrl("wss://h:9/p?x=1", "e")).toBe("wss://h:9/p/pico/v1/listener/e?x=1")
  })
})
