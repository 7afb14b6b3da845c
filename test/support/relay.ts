import * as dgram from "node:dgram"
import { once } from "node:events"
import * as net from "node:net"

/**
 * A relay that delays what it forwards, in place of the `tc netem` these kernels lack. It listens on one port for
 * UDP and TCP, as a gossip port does, and forwards to `target`: each datagram after its own `delay()` (so later
 * datagrams overtake earlier ones, which reorders them), each TCP connection's bytes after `delay()` too, in order.
 * A node advertising the relay's address (`--gossip.advertise-addr`) gets all its incoming gossip this way.
 */
export const startDelayRelay = async (
  host: string,
  target: { readonly host: string; readonly port: number },
  delay: () => number,
): Promise<{ readonly port: number; readonly close: () => void }> => {
  const sockets = new Set<net.Socket>()
  const timers = new Set<NodeJS.Timeout>()
  const later = (ms: number, action: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer)
      action()
    }, ms)
    timers.add(timer)
  }

  /** Writes what `from` reads to `to`, each chunk `delay()` later but never before the chunk ahead of it. */
  const delayedPipe = (from: net.Socket, to: net.Socket) => {
    let due = 0
    const after = () => {
      due = Math.max(Date.now() + delay(), due)
      return due - Date.now()
    }
    from.on("data", (chunk) => later(after(), () => to.write(chunk)))
    from.on("end", () => later(after(), () => to.end()))
    from.on("error", () => to.destroy())
  }

  const tcp = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host)
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on("close", () => sockets.delete(socket))
    }
    delayedPipe(client, upstream)
    delayedPipe(upstream, client)
  })
  tcp.listen(0, host)
  await once(tcp, "listening")
  const { port } = tcp.address() as net.AddressInfo

  const udp = dgram.createSocket("udp4")
  const out = dgram.createSocket("udp4")
  udp.on("message", (packet) => later(delay(), () => out.send(packet, target.port, target.host)))
  udp.bind(port, host)
  await once(udp, "listening")

  return {
    port,
    close: () => {
      for (const timer of timers) clearTimeout(timer)
      for (const socket of sockets) socket.destroy()
      tcp.close()
      udp.close()
      out.close()
    },
  }
}
