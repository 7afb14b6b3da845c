import { describe, expect, it } from "@effect/vitest"
import { FailureDetector } from "../src/Gossip/FailureDetector.js"

const log10e = Math.LOG10E

describe("FailureDetector", () => {
  it("seeds a new node with the bootstrap interval (the original's reference values, as φ)", () => {
    const detector = new FailureDetector(2000)
    detector.heartbeat("a", 100)
    expect(detector.phi("a", 200)).toBeCloseTo(0.05 * log10e)
  })

  it("grows with silence relative to the mean interval", () => {
    const detector = new FailureDetector(100)
    for (let t = 0; t <= 1000; t += 100) detector.heartbeat("a", t)
    expect(detector.phi("a", 1100)).toBeCloseTo(1 * log10e)
    expect(detector.phi("a", 2400)).toBeCloseTo(14 * log10e)
    // The default threshold of 8 is crossed after about 18.4 mean intervals.
    expect(detector.phi("a", 1000 + 1843)).toBeGreaterThan(8)
    expect(detector.phi("a", 1000 + 1842)).toBeLessThan(8)
  })

  it("keeps the last 50 intervals and ignores simultaneous arrivals", () => {
    const detector = new FailureDetector(10_000)
    const t = 60 * 200
    for (let at = 200; at <= t; at += 200) detector.heartbeat("a", at)
    detector.heartbeat("a", t)
    // The bootstrap sample has rotated out: the mean is 200.
    expect(detector.phi("a", t + 200)).toBeCloseTo(log10e)
  })

  it("keeps exactly windowSize intervals, the bootstrap one first out", () => {
    const detector = new FailureDetector(1000, 2)
    for (const t of [0, 100, 200]) detector.heartbeat("a", t)
    expect(detector.phi("a", 300)).toBeCloseTo(log10e)
  })

  it("knows nothing of unknown or removed nodes", () => {
    const detector = new FailureDetector(1000)
    detector.heartbeat("a", 0)
    detector.remove("a")
    expect(detector.phi("a", 1_000_000)).toBe(0)
  })
})
