import type * as http from "node:http"
import type { Socket } from "node:net"
import type { Duplex } from "node:stream"
import { Effect, type Scope } from "effect"
import * as Metrics from "../Metrics.js"
import type { HttpServer } from "./HttpServer.js"
import { tcpSocketOf } from "./TcpSocket.js"
import * as ThrottledLog from "./ThrottledLog.js"

type Shed = "closed idle" | "refused"

/**
 * Caps a listener's open connections. At the cap a new connection closes the connection that has been idle
 * longest (no request in flight: a keep-alive, or one that never sent anything), so a flood of silent sockets
 * cannot lock out real clients; only when every connection is busy is the newcomer refused. Each is counted in
 * `pico_connections_over_limit_total` and logged at most every ten seconds.
 */
export interface ConnectionGuard {
  /** Connections open right now. */
  readonly open: () => number
  /** Completes once every connection still open is a pass-through (an upgrade), at once if that holds now. */
  readonly awaitNoHttpConnections: Effect.Effect<void>
  /**
   * From now on (the listener has stopped), a connection is closed as soon as its response ends and it waits
   * for a next request: one that began before the drain still had keep-alive, and would hold it to the end.
   */
  readonly closeWhenIdle: () => void
}

export const make = (
  server: HttpServer,
  port: "proxy" | "upstream" | "admin",
  maxConnections: number,
): Effect.Effect<ConnectionGuard, never, Scope.Scope> =>
  Effect.gen(function* () {
    const labels = yield* Metrics.currentLabels
    const shedLabels = {
      "closed idle": Metrics.withLabels(labels, { port, action: "closed_idle" }),
      refused: Metrics.withLabels(labels, { port, action: "refused" }),
    }
    // Oldest idle first: a Set iterates in insertion order, and a connection going idle is re-inserted.
    const idle = new Set<Duplex>()
    let open = 0
    const passThroughs = new Set<Duplex>()
    const whenNoHttp = new Set<() => void>()
    const httpOpen = () => open - passThroughs.size
    const notifyIfNoHttp = () => {
      if (httpOpen() > 0 || whenNoHttp.size === 0) return
      for (const resume of whenNoHttp) resume()
      whenNoHttp.clear()
    }
    const logShed = yield* ThrottledLog.make<Shed>(["closed idle", "refused"], (counts) =>
      Effect.logWarning("connection limit reached").pipe(
        Effect.annotateLogs({
          subsystem: port,
          "max-connections": maxConnections,
          "closed-idle": counts["closed idle"],
          refused: counts.refused,
        }),
      ),
    )
    const shed = (socket: Duplex, action: Shed) => {
      socket.destroy()
      Metrics.connectionsOverLimit.unsafeUpdate(1, shedLabels[action])
      logShed(action)
    }

    const onConnection = (socket: Socket) => {
      if (open >= maxConnections) {
        const oldest = idle.values().next()
        if (oldest.done === true) return shed(socket, "refused")
        idle.delete(oldest.value)
        shed(oldest.value, "closed idle")
      }
      open++
      idle.add(socket)
      socket.once("close", () => {
        open--
        idle.delete(socket)
        passThroughs.delete(socket)
        notifyIfNoHttp()
      })
    }
    let closingWhenIdle = false
    // Once the response's end has been handled, so Node counts its connection as idle.
    const closeIdleNow = () => server.closeIdleConnections()
    // One shared listener (no closure per request): `this` is the finished response.
    function onResponseClose(this: http.ServerResponse) {
      const socket = tcpSocketOf(this.req.socket)
      // Re-inserted, so it counts as the most recently idle.
      idle.delete(socket)
      if (!socket.destroyed) idle.add(socket)
      if (closingWhenIdle) setImmediate(closeIdleNow)
    }
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
      idle.delete(tcpSocketOf(req.socket))
      res.once("close", onResponseClose)
    }
    // An upgraded connection is a byte pipe from now on: never idle again.
    const onUpgrade = (_req: http.IncomingMessage, upgraded: Duplex) => {
      const socket = tcpSocketOf(upgraded)
      idle.delete(socket)
      // Its "close" listener above has already run if it is closed.
      if (!socket.closed) passThroughs.add(socket)
      notifyIfNoHttp()
    }

    server.on("connection", onConnection)
    server.prependListener("request", onRequest)
    server.prependListener("checkContinue", onRequest)
    server.prependListener("upgrade", onUpgrade)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        server.off("connection", onConnection)
        server.off("request", onRequest)
        server.off("checkContinue", onRequest)
        server.off("upgrade", onUpgrade)
      }),
    )
    return {
      open: () => open,
      closeWhenIdle: () => {
        closingWhenIdle = true
        server.closeIdleConnections()
      },
      awaitNoHttpConnections: Effect.async<void>((resume) => {
        if (httpOpen() === 0) return resume(Effect.void)
        const done = () => resume(Effect.void)
        whenNoHttp.add(done)
        return Effect.sync(() => whenNoHttp.delete(done))
      }),
    }
  })
