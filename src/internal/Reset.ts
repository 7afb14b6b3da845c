import { Socket } from "node:net"
import type { Duplex } from "node:stream"

/**
 * Ends a connection with a reset, so its far end sees a failure rather than a clean end: a TCP connection whose
 * other half failed must not look complete. A TCP socket sends RST; anything else (a TLS socket, whose handle is
 * not TCP's; a tunnel stream, which sends its own RST when destroyed unfinished) is destroyed.
 */
export const resetConnection = (connection: Duplex): void => {
  if (connection instanceof Socket && !connection.destroyed) {
    try {
      connection.resetAndDestroy()
      return
    } catch {
      // Not a TCP handle: destroyed below.
    }
  }
  connection.destroy()
}
