/**
 * Reconnect delays: 1 s doubling to a 30 s cap, each with ±20% jitter so a fleet of agents cut off by the same
 * node restart does not reconnect in lockstep.
 */
export class Backoff {
  private attempt = 0

  constructor(
    private readonly initial = 1000,
    private readonly max = 30_000,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt, in milliseconds. */
  next(): number {
    const base = Math.min(this.max, this.initial * 2 ** this.attempt)
    this.attempt++
    return Math.round(base * (0.8 + 0.4 * this.random()))
  }

  reset(): void {
    this.attempt = 0
  }
}
