import * as http from "node:http"
import type { Duplex } from "node:stream"
import type { Session } from "./Session.js"

/**
 * An HTTP agent whose connections are streams of one tunnel session. With keep-alive, a stream that finished a
 * request goes back to the pool and carries the next one; the agent at the far end pipes it to one TCP
 * connection to the local service, so that connection is reused too (as the service's own keep-alive allows).
 * When the service closes its side, the stream ends and Node's agent drops it from the pool.
 */
export class TunnelAgent extends http.Agent {
  private readonly session: Session

  constructor(session: Session) {
    super({ keepAlive: true, scheduling: "lifo", maxFreeSockets: 64 })
    this.session = session
  }

  override createConnection(
    _options: http.ClientRequestArgs,
    callback?: (error: Error | null, stream: Duplex) => void,
  ): Duplex | undefined {
    // A session that closed since it was picked fails the request through the callback, not by throwing.
    try {
      const stream = this.session.openStream()
      // HTTP wants TCP's default: once the far side is done (the service closed its connection), close ours
      // too, so a pooled stream the service gave up on leaves the pool instead of swallowing the next request.
      const endWithPeer = () => stream.end()
      stream.once("end", endWithPeer)
      // Node's client takes a stream out of the pool when it switches protocols: from then on it is a byte pipe
      // (a TCP connection) whose half-close must pass through.
      stream.once("agentRemove", () => stream.off("end", endWithPeer))
      return stream
    } catch (error) {
      callback?.(error as Error, undefined as unknown as Duplex)
      return undefined
    }
  }
}
