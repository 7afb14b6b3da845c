import type { Duplex } from "node:stream"

/** A TLS socket's TCP socket, which the server accepted and counted; a plain socket is its own. */
export const tcpSocketOf = (socket: Duplex): Duplex =>
  (socket as Duplex & { _parent?: Duplex })._parent ?? socket
