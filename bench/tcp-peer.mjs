// The two ends of the TCP benchmark (bench/tcp.ts), each its own process so that neither shares a CPU queue with
// the orchestration:
//
//   node bench/tcp-peer.mjs serve                 a TCP service and an HTTP service on ephemeral ports; prints
//                                                 {"tcp": port, "http": port}
//   node bench/tcp-peer.mjs tcp PORT CASE         a client of the TCP service (through whatever PORT leads to)
//   node bench/tcp-peer.mjs http PORT CASE        the same over HTTP requests, with x-pico-endpoint: bench-http
//   node bench/tcp-peer.mjs library PORT CASE     the TCP client, connected with Pico's Forward.connect (dist/)
//                                                 to the endpoint bench-tcp through the proxy port PORT
//   node bench/tcp-peer.mjs relay PORT            a plain Node byte pipe to PORT on an ephemeral port; prints
//                                                 {"port": port}. Chained, relays measure what the same number
//                                                 of naive Node pipes cost, with no framing: a baseline.
//
// CASE is upload:BYTES, download:BYTES or pingpong:COUNT. The client prints one JSON line: {"mbps"} for bulk
// (MB/s, 10^6 bytes) or {"p50", "p99"} in microseconds for the 64-byte round trips.
//
// The TCP service reads one command byte per connection: "U" counts the bytes that follow until the client's FIN
// and answers the count, "D" + 8 bytes (a big-endian length) sends that many bytes, "P" echoes.

import http from "node:http"
import net from "node:net"

const CHUNK = Buffer.alloc(1024 * 1024, 0x61)
const MESSAGE = Buffer.alloc(64, 0x62)

/** Writes `total` bytes with backpressure, then ends. */
const produce = (stream, total) => {
  let left = total
  const more = () => {
    while (left > 0) {
      const piece = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left)
      left -= piece.length
      if (!stream.write(piece)) return stream.once("drain", more)
    }
    stream.end()
  }
  more()
}

const serve = async () => {
  const tcp = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    socket.once("readable", () => {
      const command = socket.read(1)
      if (command === null) return socket.destroy()
      if (command[0] === 0x55 /* U */) {
        let received = 0
        socket.on("data", (chunk) => {
          received += chunk.length
        })
        socket.on("end", () => socket.end(String(received)))
      } else if (command[0] === 0x44 /* D */) {
        const readSize = () => {
          const size = socket.read(8)
          if (size === null) return socket.once("readable", readSize)
          socket.resume()
          produce(socket, Number(size.readBigUInt64BE()))
        }
        readSize()
      } else socket.pipe(socket)
    })
    socket.on("error", () => socket.destroy())
  })
  const web = http.createServer((req, res) => {
    if (req.url === "/upload") {
      let received = 0
      req.on("data", (chunk) => {
        received += chunk.length
      })
      req.on("end", () => res.end(String(received)))
    } else if (req.url?.startsWith("/download/")) {
      res.writeHead(200, { "content-length": Number(req.url.slice(10)) })
      produce(res, Number(req.url.slice(10)))
    } else req.pipe(res)
  })
  await Promise.all(
    [tcp, web].map((server) => new Promise((resolve) => server.listen(0, "127.0.0.1", resolve))),
  )
  console.log(JSON.stringify({ tcp: tcp.address().port, http: web.address().port }))
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]

const latencies = (samples) => {
  const sorted = samples.sort((a, b) => a - b)
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) }
}

let connect = (port) =>
  new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true, noDelay: true })
    socket.once("connect", () => resolve(socket))
    socket.once("error", reject)
  })

/** Connects through Pico's own client instead: no local port, no pico forward process in between. */
const useLibrary = async () => {
  const { Effect } = await import("effect")
  const { EndpointId, Forward } = await import("../dist/index.js")
  connect = (port) =>
    Effect.runPromise(
      Forward.connect({ serverUrl: `http://127.0.0.1:${port}`, endpointId: EndpointId("bench-tcp") }),
    )
}

const untilEnd = (stream) =>
  new Promise((resolve, reject) => {
    let bytes = 0
    const chunks = []
    stream.on("data", (chunk) => {
      bytes += chunk.length
      if (chunks.length < 4) chunks.push(chunk)
    })
    stream.once("end", () => resolve({ bytes, text: Buffer.concat(chunks).toString() }))
    stream.once("error", reject)
  })

const mbps = (bytes, started) => ({ mbps: bytes / 1e6 / ((performance.now() - started) / 1000) })

const tcpClient = {
  upload: async (port, bytes) => {
    const socket = await connect(port)
    const started = performance.now()
    socket.write("U")
    produce(socket, bytes)
    const answer = await untilEnd(socket)
    if (Number(answer.text) !== bytes)
      throw new Error(`the service received ${answer.text} of ${bytes} bytes`)
    return mbps(bytes, started)
  },
  download: async (port, bytes) => {
    const socket = await connect(port)
    const started = performance.now()
    const size = Buffer.alloc(8)
    size.writeBigUInt64BE(BigInt(bytes))
    socket.end(Buffer.concat([Buffer.from("D"), size]))
    const received = await untilEnd(socket)
    if (received.bytes !== bytes) throw new Error(`received ${received.bytes} of ${bytes} bytes`)
    return mbps(bytes, started)
  },
  pingpong: async (port, count) => {
    const socket = await connect(port)
    socket.write("P")
    const samples = []
    for (let i = 0; i < count; i++) {
      const started = performance.now()
      await new Promise((resolve) => {
        let got = 0
        const onData = (chunk) => {
          got += chunk.length
          if (got < MESSAGE.length) return
          socket.off("data", onData)
          resolve()
        }
        socket.on("data", onData)
        socket.write(MESSAGE)
      })
      samples.push((performance.now() - started) * 1000)
    }
    socket.destroy()
    return latencies(samples)
  },
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
const headers = { "x-pico-endpoint": "bench-http" }

const exchange = (port, method, path, body) =>
  new Promise((resolve, reject) => {
    const req = http.request({ port, host: "127.0.0.1", method, path, headers, agent }, (res) =>
      untilEnd(res).then(resolve, reject),
    )
    req.on("error", reject)
    if (typeof body === "number") produce(req, body)
    else req.end(body)
  })

const httpClient = {
  upload: async (port, bytes) => {
    const started = performance.now()
    const answer = await exchange(port, "POST", "/upload", bytes)
    if (Number(answer.text) !== bytes)
      throw new Error(`the service received ${answer.text} of ${bytes} bytes`)
    return mbps(bytes, started)
  },
  download: async (port, bytes) => {
    const started = performance.now()
    const received = await exchange(port, "GET", `/download/${bytes}`)
    if (received.bytes !== bytes) throw new Error(`received ${received.bytes} of ${bytes} bytes`)
    return mbps(bytes, started)
  },
  pingpong: async (port, count) => {
    const samples = []
    for (let i = 0; i < count; i++) {
      const started = performance.now()
      await exchange(port, "POST", "/echo", MESSAGE)
      samples.push((performance.now() - started) * 1000)
    }
    return latencies(samples)
  },
}

/** Pipes each accepted connection to `target`, both ways, half-closes included: the least a Node hop can do. */
const relay = (target) => {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    const onward = net.connect({ port: target, host: "127.0.0.1", allowHalfOpen: true, noDelay: true })
    client.pipe(onward)
    onward.pipe(client)
    client.on("error", () => onward.destroy())
    onward.on("error", () => client.destroy())
  })
  server.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ port: server.address().port })))
}

const [role, port, which] = process.argv.slice(2)
if (role === "serve") await serve()
else if (role === "relay") relay(Number(port))
else {
  if (role === "library") await useLibrary()
  const [test, amount] = which.split(":")
  const result = await (role === "http" ? httpClient : tcpClient)[test](Number(port), Number(amount))
  console.log(JSON.stringify(result))
  agent.destroy()
}
