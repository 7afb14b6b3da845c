import type { Exchange } from "../Proxy/Forward.js"
import { Recording, type RecordingLimits } from "./Recording.js"

/**
 * The capture of one endpoint: a ring of its last `size` exchanges, in flight or done, oldest first. A new
 * exchange takes the place of the oldest done one; when all `size` are still in flight it is not recorded
 * (`skipped` counts them), so however many requests arrive at once, the capture holds `size` recordings at most.
 */
export class EndpointCapture {
  private readonly recordings: Array<Recording> = []
  skipped = 0

  constructor(
    readonly endpointId: string,
    private readonly nodeId: string,
    private readonly size: number,
    private readonly limits: RecordingLimits,
    private readonly onDone: (recording: Recording) => void,
  ) {}

  /** Starts recording the exchange, or returns undefined when the ring is full of exchanges in flight. */
  begin(exchange: Exchange): Recording | undefined {
    if (this.recordings.length >= this.size) {
      const oldestDone = this.recordings.findIndex((recording) => recording.done)
      if (oldestDone < 0) {
        this.skipped++
        return undefined
      }
      this.recordings.splice(oldestDone, 1)
    }
    const recording = new Recording(this.nodeId, this.endpointId, exchange, this.limits, this.onDone)
    this.recordings.push(recording)
    return recording
  }

  /** Every recording, newest first. */
  newestFirst(): Array<Recording> {
    return [...this.recordings].reverse()
  }

  /** The newest recording of the request id (a client may reuse one). */
  find(requestId: string): Recording | undefined {
    return this.recordings.findLast((recording) => recording.id === requestId)
  }

  /** What the recordings hold (see Recording.retained). */
  retained(): number {
    let total = 0
    for (const recording of this.recordings) total += recording.retained
    return total
  }
}
