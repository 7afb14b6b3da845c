/**
 * Accrual failure detection (Hayashibara et al.), with the exponential model Cassandra uses: if heartbeats arrive
 * at a mean interval m, the chance of hearing nothing for t ms is e^(-t/m), and the suspicion level is
 *
 *   φ = -log10(e^(-t/m)) = t / (m · ln 10) ≈ 0.434 · t / m
 *
 * So a threshold of 8 declares a node unreachable after about 18.4 mean intervals of silence. The exponential
 * model suits gossiped heartbeats, whose arrivals are bursty: it depends on the mean only, not on a variance that a
 * couple of back-to-back arrivals would shrink.
 */

const PHI_FACTOR = 1 / Math.LN10

/** The last `size` inter-arrival intervals of one node, seeded with a bootstrap interval. */
export class ArrivalWindow {
  private readonly intervals: Array<number>
  private next = 0
  private sum: number

  constructor(
    private last: number,
    bootstrapInterval: number,
    private readonly size: number,
  ) {
    // The seed stands in for history we do not have yet, so a new node is not suspected on its first silence.
    this.intervals = [bootstrapInterval]
    this.sum = bootstrapInterval
  }

  record(now: number): void {
    const interval = now - this.last
    this.last = now
    // Arrivals at the same instant carry no timing information; counting them would make silence look suspect.
    if (interval <= 0) return
    if (this.intervals.length < this.size) this.intervals.push(interval)
    else {
      this.sum -= this.intervals[this.next] as number
      this.intervals[this.next] = interval
      this.next = (this.next + 1) % this.size
    }
    this.sum += interval
  }

  phi(now: number): number {
    return ((now - this.last) / (this.sum / this.intervals.length)) * PHI_FACTOR
  }
}

/** One arrival window per remote node. */
export class FailureDetector {
  private readonly windows = new Map<string, ArrivalWindow>()

  constructor(
    /** The interval assumed before any has been measured. */
    private readonly bootstrapInterval: number,
    private readonly windowSize = 50,
  ) {}

  /** Records evidence that the node was alive at `now`. */
  heartbeat(id: string, now: number): void {
    const window = this.windows.get(id)
    if (window === undefined)
      this.windows.set(id, new ArrivalWindow(now, this.bootstrapInterval, this.windowSize))
    else window.record(now)
  }

  /** The suspicion level of the node at `now`; 0 for a node never heard of. */
  phi(id: string, now: number): number {
    return this.windows.get(id)?.phi(now) ?? 0
  }

  remove(id: string): void {
    this.windows.delete(id)
  }
}
