// The least a Node process can spend per 1 KiB request, for bench/floors.sh: four servers with nothing of Pico's.
//   node bench/node-floors.cjs http-answer PORT          Node's HTTP server answering 1 KiB itself
//   node bench/node-floors.cjs raw-answer PORT           llhttp on a plain socket answering 1 KiB itself
//   node bench/node-floors.cjs http-hop PORT UPSTREAM    Node's HTTP server relaying over one kept-alive socket
//   node bench/node-floors.cjs raw-hop PORT UPSTREAM     llhttp on both sockets, relaying
// The hops are the shape of a Pico server's work without the tunnel: a client's request in, a request out on a
// connection already open, a response parsed and relayed. They serve one client at a time (enough for wrk -c1) and
// check nothing a real proxy must: floors, not proxies.
"use strict"
const http = require("node:http")
const net = require("node:net")
const { HTTPParser } = require("node:_http_common")

const [mode, port, upstreamPort] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])]
const body = Buffer.alloc(1024, 97)

/** An llhttp parser of `kind` calling `onHead(headers, url, status, message)` and the optional body callbacks. */
const parser = (kind, onHead, onBody = () => {}, onComplete = () => {}) => {
  const p = new HTTPParser()
  p.initialize(kind, {}, 16 * 1024, HTTPParser.kLenientNone)
  p[HTTPParser.kOnHeaders] = () => {}
  p[HTTPParser.kOnHeadersComplete] = (_major, _minor, headers, _method, url, status, message) => {
    onHead(headers, url, status, message)
    return 0
  }
  p[HTTPParser.kOnBody] = onBody
  p[HTTPParser.kOnMessageComplete] = onComplete
  p[HTTPParser.kOnExecute] = () => {}
  return p
}

/** A plain socket server feeding each connection's bytes to a request parser made by `parserFor(socket)`. */
const rawServer = (parserFor) =>
  net.createServer((socket) => {
    socket.setNoDelay(true)
    const requests = parserFor(socket)
    socket.on("data", (data) => {
      if (requests.execute(data) instanceof Error) socket.destroy()
    })
    socket.on("error", () => {})
  })

/** One kept-alive connection to the upstream; `relay(response parser callbacks)` wires its responses. */
const upstream = (onHead, onBody, onComplete) => {
  const socket = net.connect(upstreamPort, "127.0.0.1")
  socket.setNoDelay(true)
  const responses = parser(HTTPParser.RESPONSE, onHead, onBody, onComplete)
  socket.on("data", (data) => responses.execute(data))
  return (url) => socket.write(`GET ${url} HTTP/1.1\r\nHost: upstream\r\n\r\n`, "latin1")
}

const servers = {
  "http-answer": () =>
    http.createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain", "content-length": body.length })
      res.end(body)
    }),
  "raw-answer": () =>
    rawServer((socket) =>
      parser(HTTPParser.REQUEST, () => {
        socket.write(
          `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nDate: ${new Date().toUTCString()}\r\n\r\n`,
          "latin1",
        )
        socket.write(body)
      }),
    ),
  "http-hop": () => {
    let res
    const send = upstream(
      (headers, _url, status, message) => res.writeHead(status, message, headers),
      (chunk) => res.write(chunk),
      () => res.end(),
    )
    return http.createServer((req, response) => {
      res = response
      send(req.url)
    })
  },
  "raw-hop": () => {
    let client
    const send = upstream(
      (headers, _url, status, message) => {
        let head = `HTTP/1.1 ${status} ${message}\r\n`
        for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`
        client.cork()
        client.write(`${head}\r\n`, "latin1")
      },
      (chunk) => client.write(chunk),
      () => {
        const done = client
        process.nextTick(() => done.uncork())
      },
    )
    return rawServer((socket) =>
      parser(HTTPParser.REQUEST, (_headers, url) => {
        client = socket
        send(url)
      }),
    )
  },
}

const make = servers[mode]
if (make === undefined) {
  console.error(`mode must be one of: ${Object.keys(servers).join(", ")}`)
  process.exit(2)
}
make().listen(port, "127.0.0.1")
