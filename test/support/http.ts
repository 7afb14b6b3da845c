import * as http from "node:http"
import * as https from "node:https"
import type { AddressInfo } from "node:net"
import * as net from "node:net"

export interface Response {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly rawHeaders: ReadonlyArray<string>
  readonly body: string
}

/** A request from a real HTTP(S) client; the response body is collected (tests only use small ones). */
export const request = (
  url: string,
  options: {
    method?: string
    headers?: http.OutgoingHttpHeaders | ReadonlyArray<string>
    body?: string | Buffer
    /** Fails the request if it has not ended by then (a black-holed peer would otherwise hang it). */
    timeoutMs?: number
    /** For https URLs: the CA to trust, and a client certificate to present. */
    tls?: { ca: Buffer; cert?: Buffer; key?: Buffer }
  } = {},
): Promise<Response> =>
  new Promise((resolve, reject) => {
    const requestOptions = {
      method: options.method ?? "GET",
      headers: options.headers as http.OutgoingHttpHeaders,
      agent: false as const,
      ...options.tls,
    }
    const send = url.startsWith("https:") ? https.request : http.request
    const req = send(url, requestOptions, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => chunks.push(chunk))
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body: Buffer.concat(chunks).toString("utf8"),
        }),
      )
      res.on("error", reject)
    })
    req.on("error", reject)
    if (options.timeoutMs !== undefined) {
      const timer = setTimeout(
        () => req.destroy(new Error(`no response within ${options.timeoutMs} ms`)),
        options.timeoutMs,
      )
      req.on("close", () => clearTimeout(timer))
    }
    req.end(options.body)
  })

/** Starts an HTTP server on 127.0.0.1 with an ephemeral port. */
export const startHttpServer = async (
  handler: http.RequestListener,
): Promise<{ readonly server: http.Server; readonly port: number; readonly close: () => Promise<void> }> => {
  const server = http.createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** Polls `check` until it returns true; fails with `what` after `timeoutMs`. Conditions, not sleeps. */
export const waitFor = async (
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Whether something accepts TCP connections on the port (the connection is closed at once). */
export const accepts = (port: number, host = "127.0.0.1"): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect(port, host)
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

/** A port nothing listens on: bound, then released. */
export const closedPort = async (): Promise<number> => {
  const { port, close } = await startHttpServer(() => {})
  await close()
  return port
}

/**
 * Writes raw bytes to a port and collects everything the server sends until it closes the connection: for
 * requests no well-behaved client would send. Fails if the server keeps the connection open past `timeoutMs`.
 */
export const rawExchange = (port: number, bytes: string | Buffer, timeoutMs = 10_000): Promise<string> =>
  openConnection(port, bytes, timeoutMs).closed

/**
 * A raw connection that sends `bytes` and collects what comes back: `closed` resolves with it once the connection
 * closes (rejects if it is still open after `timeoutMs`); `destroy` cuts it from the client's side.
 */
export const openConnection = (port: number, bytes: string | Buffer, timeoutMs = 10_000) => {
  const socket = net.connect(port, "127.0.0.1", () => socket.write(bytes))
  const chunks: Array<Buffer> = []
  socket.on("data", (chunk: Buffer) => chunks.push(chunk))
  socket.on("error", () => {})
  const closed = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`connection still open after ${timeoutMs}ms; received ${Buffer.concat(chunks)}`))
    }, timeoutMs)
    socket.on("close", () => {
      clearTimeout(timer)
      resolve(Buffer.concat(chunks).toString("latin1"))
    })
  })
  return { closed, destroy: () => socket.destroy() }
}

/**
 * The two services of the in-flight retry tests: `silent` records each request and never answers it (but
 * /ready-check, so that a test can see the route work), `second` records each and answers "second".
 */
export const startInFlightServices = async () => {
  const taken: Array<string> = []
  const seenBySecond: Array<string> = []
  const silent = await startHttpServer((req, res) => {
    taken.push(`${req.method} ${req.url}`)
    if (req.url === "/ready-check") res.end("ready")
  })
  const second = await startHttpServer((req, res) => {
    seenBySecond.push(`${req.method} ${req.url}`)
    res.end("second")
  })
  return { taken, silent, seenBySecond, second }
}

const scriptedServers: Array<{ readonly server: net.Server; readonly sockets: Set<net.Socket> }> = []

/**
 * A server on 127.0.0.1 that hands each connection, once a request head (up to the blank line) has arrived, to
 * `answer` with that head, to reply however the test wants: a proxy, a node, anything that speaks HTTP/1.1 badly.
 * Returns its port; `closeScriptedServers` (for afterEach) closes them all.
 */
export const scriptedServer = async (answer: (socket: net.Socket, head: string) => void): Promise<number> => {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.once("close", () => sockets.delete(socket))
    let head = ""
    socket.on("error", () => {})
    socket.on("data", function onData(chunk: Buffer) {
      head += chunk.toString("latin1")
      if (!head.includes("\r\n\r\n")) return
      socket.off("data", onData)
      answer(socket, head)
    })
  })
  scriptedServers.push({ server, sockets })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return (server.address() as AddressInfo).port
}

/** Closes every scripted server and the connections they still have. */
export const closeScriptedServers = (): void => {
  for (const { server, sockets } of scriptedServers.splice(0)) {
    for (const socket of sockets) socket.destroy()
    server.close()
  }
}

/** `closed` settles once the socket given to `watch` has closed: to see that a client hung up. */
export const closeWatch = () => {
  let watch: (socket: net.Socket) => void = () => {}
  const closed = new Promise<void>((resolve) => {
    watch = (socket) => socket.on("close", () => resolve())
  })
  return { watch, closed }
}

/**
 * A request answered in full on a kept-alive connection, then `second` (and the client's end of the connection if
 * `end`): what came back after the first answer, once the server has closed the connection.
 */
export const afterFirstAnswer = (port: number, second: string, end: boolean): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1")
    const first = "GET /health HTTP/1.1\r\nHost: e.example.com\r\n\r\n"
    let answer = ""
    let firstLength = -1
    socket.on("error", reject)
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString("latin1")
      if (firstLength >= 0 || !answer.includes("\r\n\r\n")) return
      // The first answer is whole once its Content-Length of body has arrived.
      const headEnd = answer.indexOf("\r\n\r\n") + 4
      const length = Number(/content-length: (\d+)/i.exec(answer)?.[1] ?? 0)
      if (answer.length < headEnd + length) return
      firstLength = headEnd + length
      if (end) socket.end(second)
      else socket.write(second)
    })
    socket.on("close", () => resolve(answer.slice(Math.max(0, firstLength))))
    socket.write(first)
  })
